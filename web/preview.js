// Watch a video while it encodes: the job's preview is a fragmented MP4 (or a
// live WebM) that grows on the remote host; its status says how many bytes
// are whole fragments. Each new stretch is read with a byte range and appended
// to a MediaSource, so the player plays what is encoded and goes on as it grows.

export class Preview {
  constructor(video, caption) {
    this.video = video;
    this.caption = caption;
    this.active = null;   // {url, mime, source, buffer, offset, size, busy, controller}
  }

  /** The job's status arrived: start, grow or stop the preview. */
  update(preview) {
    if (!preview) return;
    if (!this.active || this.active.url !== preview.url) this.start(preview);
    const active = this.active;
    if (!active) return;
    active.size = Math.max(active.size, preview.size);
    this.caption.textContent = `Preview: the first ${preview.frames} frames, as encoded so far.`;
    this.pump();
  }

  start(preview) {
    this.stop();
    if (!window.MediaSource || !MediaSource.isTypeSupported(preview.mime)) {
      this.caption.textContent = "This browser cannot play the preview; the video plays "
        + "here when it is done.";
      this.caption.hidden = false;
      return;
    }
    const source = new MediaSource();
    const active = { url: preview.url, mime: preview.mime, source, buffer: null, offset: 0,
                     size: 0, busy: false, controller: new AbortController() };
    this.active = active;
    this.video.src = URL.createObjectURL(source);
    this.video.muted = true;
    this.video.hidden = false;
    this.caption.hidden = false;
    source.addEventListener("sourceopen", () => {
      if (this.active !== active) return;
      active.buffer = source.addSourceBuffer(preview.mime);
      this.pump();
    }, { once: true });
  }

  async pump() {
    const active = this.active;
    if (!active || !active.buffer || active.busy || active.offset >= active.size) return;
    active.busy = true;
    try {
      const response = await fetch(active.url, {
        headers: { Range: `bytes=${active.offset}-${active.size - 1}` },
        credentials: "same-origin", signal: active.controller.signal });
      if (response.status !== 206 && response.status !== 200) return;  // it ended: the video follows
      const bytes = await response.arrayBuffer();
      if (this.active !== active || !bytes.byteLength) return;
      await new Promise((resolve, reject) => {
        active.buffer.addEventListener("updateend", resolve, { once: true });
        active.buffer.addEventListener("error", reject, { once: true });
        active.buffer.appendBuffer(bytes);
      });
      active.offset += bytes.byteLength;
      if (this.video.paused) this.video.play().catch(() => null);
    } catch (error) {
      return;  // aborted, or the job ended under it: the final video takes over
    } finally {
      active.busy = false;
    }
    this.pump();
  }

  stop() {
    const active = this.active;
    this.active = null;
    if (active) {
      active.controller.abort();
      URL.revokeObjectURL(this.video.src);
    }
    this.video.removeAttribute("src");
    this.video.load();
    this.video.hidden = true;
    this.caption.hidden = true;
  }
}
