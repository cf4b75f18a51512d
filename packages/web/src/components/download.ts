/**
 * Save a response as a file. The API needs the tab's token in a header,
 * which a plain link cannot send, so the page fetches and hands the bytes
 * to the browser's download.
 */
export async function saveResponse(response: Response, fileName: string): Promise<void> {
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  followDownloadLink(url, fileName);
  // The download has its bytes once click() returns; the URL is not needed after.
  setTimeout(() => URL.revokeObjectURL(url), 0);
}

/** Hand `href` to the browser's own download, saved as `fileName` (streamed to disk when it is a URL the browser can fetch itself). */
export function followDownloadLink(href: string, fileName: string): void {
  const link = document.createElement('a');
  link.href = href;
  link.download = fileName;
  document.body.append(link);
  link.click();
  link.remove();
}

/** The file name a Content-Disposition header gives (its UTF-8 form first), else `fallback`. */
export function fileNameOf(response: Response, fallback: string): string {
  const header = response.headers.get('content-disposition') ?? '';
  const utf8 = /filename\*=UTF-8''([^;]+)/i.exec(header)?.[1];
  if (utf8) {
    try {
      return decodeURIComponent(utf8);
    } catch (err) {
      // A malformed escape from some proxy: the plain name below still works.
      void err;
    }
  }
  return /filename="([^"]+)"/i.exec(header)?.[1] ?? fallback;
}
