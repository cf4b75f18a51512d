/**
 * Put `text` on the clipboard. The Clipboard API exists only in a secure
 * context (https, or localhost): a dashboard served over plain http on
 * another host has none, and there the browser's copy command of a
 * selected hidden text box still copies.
 */
export async function copyText(text: string): Promise<void> {
  if (navigator.clipboard) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const box = document.createElement('textarea');
  box.value = text;
  box.setAttribute('readonly', '');
  // Off screen, not display:none: a box not rendered cannot be selected.
  box.style.position = 'fixed';
  box.style.left = '-10000px';
  document.body.append(box);
  const focused = document.activeElement;
  try {
    box.select();
    if (!document.execCommand('copy')) throw new Error('the browser refused to copy (copying needs https or localhost here)');
  } finally {
    box.remove();
    if (focused instanceof HTMLElement) focused.focus();
  }
}
