// A folder's entries as a virtual list: rows of one height, and only those in
// view (and a few beyond) exist in the page, so ten thousand entries open as
// fast as a hundred. A filter, a tick or a new thumbnail changes rows in place.
import { bytes } from "./api.js";
import { icon } from "./icons.js";

export const IMAGE = /\.(png|jpe?g)$/i;
const ROW = 44;        // px; .listing li in style.css has this height
const OVERSCAN = 8;    // rows rendered above and below the view
const SETTLE_MS = 120; // a view still this long asks for its thumbnails

/** A DOM element with attributes (``on…``: listeners) and children. */
export function element(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

export function shortReason(message, path) {
  const name = path.slice(path.lastIndexOf("/") + 1);
  return (message || "Cannot read this image.").split(path).join(name);
}

export class Listing {
  /**
   * ``scroller`` scrolls; ``list`` (inside it) holds the rows. ``thumbs`` is a
   * Thumbnails; ``onOpen(path)`` opens a folder, ``onToggle(path, on)`` ticks a frame,
   * ``isChosen(path)`` says whether a frame is in the selection.
   */
  constructor(scroller, list, summary, { thumbs, onOpen, onToggle, isChosen }) {
    Object.assign(this, { scroller, list, summary, thumbs, onOpen, onToggle, isChosen });
    this.entries = [];   // everything in the folder, parent row first
    this.shown = [];     // the entries the filter lets through
    this.rows = new Map();  // index in shown → li
    this.highlight = null;
    this.filter = "";
    let queued = false;
    scroller.addEventListener("scroll", () => {
      if (queued) return;
      queued = true;
      requestAnimationFrame(() => { queued = false; this.render(); });
    });
    thumbs.subscribe((path, entry) => this.thumbArrived(path, entry));
  }

  /** A new folder: its entries (``parent`` is the folder above, or null). */
  setEntries(path, entries, parent, highlight = null) {
    this.path = path;
    this.entries = parent ? [{ type: "parent", name: "Parent folder", path: parent }, ...entries]
      : entries;
    this.highlight = highlight;
    this.apply();
    const index = highlight ? this.shown.findIndex((entry) => entry.path === highlight) : -1;
    this.scroller.scrollTop = index > 0
      ? Math.max(0, index * ROW - this.scroller.clientHeight / 2 + ROW / 2) : 0;
    this.render();
  }

  setFilter(text) {
    this.filter = text.trim().toLowerCase();
    this.apply();
    this.render();
  }

  apply() {
    const filter = this.filter;
    this.shown = filter ? this.entries.filter((entry) => entry.type === "parent"
      || entry.name.toLowerCase().includes(filter)) : this.entries;
    for (const row of this.rows.values()) row.remove();
    this.rows.clear();
    this.list.style.height = `${this.shown.length * ROW}px`;
    this.list.setAttribute("aria-rowcount", String(this.shown.length));
    this.describe();
  }

  describe() {
    const count = (test) => this.entries.filter(test).length;
    const folders = count((e) => e.type === "d");
    const images = count((e) => e.type === "f" && IMAGE.test(e.name));
    const others = count((e) => e.type === "f" && !IMAGE.test(e.name));
    const plural = (n, one, many) => `${n.toLocaleString("en")} ${n === 1 ? one : many}`;
    const parts = [plural(folders, "folder", "folders"), plural(images, "image", "images")];
    if (others) parts.push(plural(others, "other file", "other files"));
    const total = this.entries.filter((e) => e.type !== "parent").length;
    const shown = this.shown.filter((e) => e.type !== "parent").length;
    this.summary.textContent = parts.join(" · ")
      + (this.filter ? ` — ${shown.toLocaleString("en")} of ${total.toLocaleString("en")} `
        + `match “${this.filter}”` : "");
    this.summary.dataset.images = String(images);
    this.summary.dataset.shown = String(shown);
  }

  /** Rows for what is in view now; thumbnails for the images among them. */
  render() {
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight || 400;
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const last = Math.min(this.shown.length - 1, Math.ceil((top + height) / ROW) + OVERSCAN);
    for (const [index, row] of this.rows) {
      if (index < first || index > last) { row.remove(); this.rows.delete(index); }
    }
    for (let index = first; index <= last; index += 1) {
      if (!this.rows.has(index)) {
        const row = this.row(this.shown[index], index);
        this.rows.set(index, row);
        this.list.append(row);
      }
    }
    // Only the rows truly in view ask for thumbnails, top first, once the view
    // settles: a fast scroll or a filter being typed asks for nothing on its way.
    clearTimeout(this.settle);
    this.settle = setTimeout(() => this.wantThumbs(), SETTLE_MS);
  }

  wantThumbs() {
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight || 400;
    const seenFirst = Math.floor(top / ROW), seenLast = Math.ceil((top + height) / ROW);
    const paths = [];
    for (let index = seenFirst; index <= Math.min(seenLast, this.shown.length - 1); index += 1) {
      const entry = this.shown[index];
      if (entry.type === "f" && IMAGE.test(entry.name)) paths.push(entry.path);
    }
    this.thumbs.show(paths);
  }

  row(entry, index) {
    const props = { style: `top: ${index * ROW}px`, "aria-posinset": String(index + 1),
                    "aria-setsize": String(this.shown.length), "data-path": entry.path };
    if (entry.type === "parent" || entry.type === "d") {
      return element("li", { ...props, class: "dir" }, element("button", { type: "button",
        onclick: () => this.onOpen(entry.path) },
      icon(entry.type === "parent" ? "up" : "folder"), entry.name));
    }
    if (!IMAGE.test(entry.name)) {
      return element("li", { ...props, class: "file" }, icon("file"),
        element("span", { class: "name" }, entry.name),
        element("span", { class: "size" }, bytes(entry.size)));
    }
    const box = element("input", { type: "checkbox", "aria-label": `Select ${entry.name}` });
    box.checked = this.isChosen(entry.path);
    box.addEventListener("change", () => this.onToggle(entry.path, box.checked));
    const row = element("li", { ...props, class: "image" }, box,
      element("span", { class: "thumb" }),
      element("span", { class: "name" }, entry.name),
      element("span", { class: "size" }, bytes(entry.size)));
    if (entry.path === this.highlight) {
      row.classList.add("highlight");
      row.setAttribute("aria-current", "true");
    }
    const known = this.thumbs.get(entry.path);
    if (known) this.fill(row, entry.path, known);
    return row;
  }

  fill(row, path, known) {
    const slot = row.querySelector(".thumb");
    if (known.url) {
      slot.replaceChildren(element("img", { src: known.url, alt: "", width: "48",
                                            height: "36" }));
      return;
    }
    slot.replaceChildren(icon("warning", "Cannot be used"));
    if (known.error.code === "request") return;  // not the frame's fault: asked again later
    row.classList.add("bad");
    let reason = row.querySelector(".reason");
    if (!reason) {
      reason = element("span", { class: "reason" });
      row.querySelector(".name").after(reason);
    }
    reason.textContent = shortReason(known.error.message, path);
  }

  thumbArrived(path, entry) {
    for (const row of this.rows.values()) {
      if (row.dataset.path === path) this.fill(row, path, entry);
    }
  }

  /** The selection changed: tick boxes of the rows there are, nothing more. */
  refreshChecks() {
    for (const row of this.rows.values()) {
      const box = row.querySelector("input[type=checkbox]");
      if (box) box.checked = this.isChosen(row.dataset.path);
    }
  }

  images() {
    return this.entries.filter((entry) => entry.type === "f" && IMAGE.test(entry.name));
  }
}
