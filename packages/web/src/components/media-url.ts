/** Types whose document, opened on its own, cannot run script: raster images, audio, video (no `+xml` kind of them). */
const INERT_MEDIA = /^(image\/(png|jpeg|gif|webp|avif|bmp|apng|x-icon|vnd\.microsoft\.icon)|audio\/[a-z0-9.-]+|video\/[a-z0-9.-]+)$/;

/**
 * The URL a preview plays fetched media from. A blob: URL belongs to the
 * dashboard's origin, also as a tab of its own ("Open image in new tab"):
 * an SVG opened that way runs its script with the page's powers (its token,
 * the API). So only inert types get one; any other (SVG) becomes a data:
 * URL, whose document has an opaque origin of its own (and which a page
 * cannot open as a top-level tab at all).
 */
export async function mediaUrl(blob: Blob): Promise<{ url: string; revoke: boolean }> {
  const type = blob.type.split(';')[0]!.trim().toLowerCase();
  if (INERT_MEDIA.test(type)) return { url: URL.createObjectURL(blob), revoke: true };
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let binary = '';
  // In slices: String.fromCharCode takes its bytes as arguments, and a call has only so many.
  for (let at = 0; at < bytes.length; at += 0x8000) binary += String.fromCharCode(...bytes.subarray(at, at + 0x8000));
  const url = `data:${/^[a-z0-9.+-]+\/[a-z0-9.+-]+$/.test(type) ? type : 'application/octet-stream'};base64,${btoa(binary)}`;
  return { url, revoke: false };
}
