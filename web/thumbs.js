// Thumbnails in batches: one POST …/thumbnails answers for many frames (the
// agent converts the misses with few ffmpeg runs and caches them). The page
// asks only for rows in view, top to bottom, one batch at a time, drops a batch
// whose rows all scrolled away, and never asks twice for what it has.
import { ApiError, call } from "./api.js";

export const THUMB_SIZE = 96;
const BATCH = 24;

export class Thumbnails {
  constructor() {
    this.sid = null;
    this.known = new Map();   // path → {url} or {error: {code, message}}
    this.wanted = [];         // paths in view without a thumbnail, in order
    this.running = null;      // {paths, controller}
    this.listeners = new Set();
  }

  /** A new session (or none): what was known belongs to the old one. */
  reset(sid) {
    if (this.running) this.running.controller.abort();
    this.running = null;
    this.sid = sid;
    this.known.clear();
    this.wanted = [];
  }

  get(path) {
    return this.known.get(path);
  }

  /** Call ``listener(path, entry)`` when a thumbnail (or its error) arrives. */
  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The rows in view now: load theirs, forget what scrolled away. */
  show(paths) {
    this.paused = false;
    this.wanted = paths.filter((path) => !this.known.has(path));
    const running = this.running;
    if (running && !running.paths.some((path) => this.wanted.includes(path))) {
      running.controller.abort();  // all of it scrolled away
      this.running = null;
    }
    this.pump();
  }

  /** Thumbnails of ``paths`` at once, ahead of the rows (the order strip): one
   * request for those not known yet. */
  async now(paths) {
    const missing = [...new Set(paths.filter((path) => !this.known.has(path)))];
    if (missing.length) await this.fetch(missing, new AbortController());
    return paths.map((path) => this.known.get(path));
  }

  pump() {
    if (this.running || !this.sid || this.paused) return;
    const paths = this.wanted.filter((path) => !this.known.has(path)).slice(0, BATCH);
    if (!paths.length) return;
    const controller = new AbortController();
    this.running = { paths, controller };
    this.fetch(paths, controller).finally(() => {
      if (this.running && this.running.controller === controller) this.running = null;
      this.wanted = this.wanted.filter((path) => !this.known.has(path));
      this.pump();
    });
  }

  async fetch(paths, controller) {
    const sid = this.sid;
    let answer;
    try {
      answer = await call("POST", `/remotes/${sid}/thumbnails`,
        { paths, "max-size": THUMB_SIZE }, { signal: controller.signal });
    } catch (error) {
      if (controller.signal.aborted || sid !== this.sid) return;
      // The batch as a whole failed (session gone, server down): say so on each row,
      // without remembering it, so that scrolling back asks again.
      // Nothing more is asked until the view moves.
      this.paused = true;
      const message = error instanceof ApiError ? error.message : String(error);
      for (const path of paths) this.tell(path, { error: { code: "request", message } });
      return;
    }
    if (sid !== this.sid) return;
    for (const item of answer.thumbnails) {
      const entry = item.ok ? { url: `data:${item.content_type};base64,${item.data}`,
                                width: item.width, height: item.height }
        : { error: item.error };
      this.known.set(item.path, entry);
      this.tell(item.path, entry);
    }
  }

  tell(path, entry) {
    for (const listener of this.listeners) listener(path, entry);
  }
}
