// The public HTTP API, as the page uses it: the login cookie goes along with
// every request, and changes carry the _xsrf cookie back as X-XSRFToken.

export class ApiError extends Error {
  constructor(status, message, hint, body) {
    super(message);
    this.status = status;
    this.hint = hint;
    this.body = body || {};
    this.code = this.body.errors && this.body.errors[0] ? this.body.errors[0].code : "";
  }
}

function xsrf() {
  const match = document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export async function call(method, path, body, { signal } = {}) {
  const headers = {};
  if (method !== "GET" && method !== "HEAD") headers["X-XSRFToken"] = xsrf();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, credentials: "same-origin", signal,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, "The framewire server cannot be reached.",
                       "Check that it is running, then try again.");
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (error) { data = null; }
  if (!response.ok) {
    const message = response.headers.get("X-Slycat-Message")
      || `The server answered ${response.status}.`;
    throw new ApiError(response.status, message, response.headers.get("X-Slycat-Hint"), data);
  }
  return data;
}

/** A remote path as a URL path: every segment percent-encoded. */
export function pathUrl(path) {
  return path.split("/").map(encodeURIComponent).join("/");
}

/** frame2 before frame10: digit runs compare as numbers (as the agent sorts). */
export function naturalCompare(a, b) {
  const split = (text) => text.toLowerCase().split(/(\d+)/).filter((part) => part !== "");
  const left = split(a), right = split(b);
  for (let i = 0; i < Math.min(left.length, right.length); i += 1) {
    const x = left[i], y = right[i];
    const xn = /^\d+$/.test(x), yn = /^\d+$/.test(y);
    if (xn && yn && Number(x) !== Number(y)) return Number(x) - Number(y);
    if (xn !== yn) return xn ? -1 : 1;
    if (x !== y) return x < y ? -1 : 1;
  }
  return left.length - right.length;
}

/** A shell-style pattern (*, ?, [abc]) as a whole-name regular expression. */
export function globRegExp(pattern) {
  let out = "";
  for (let i = 0; i < pattern.length; i += 1) {
    const char = pattern[i];
    if (char === "*") out += ".*";
    else if (char === "?") out += ".";
    else if (char === "[") {
      const end = pattern.indexOf("]", i + 1);
      if (end < 0) { out += "\\["; continue; }
      let set = pattern.slice(i + 1, end).replace(/\\/g, "\\\\");
      if (set.startsWith("!")) set = "^" + set.slice(1);
      out += `[${set}]`;
      i = end;
    } else out += char.replace(/[.+^${}()|\\\]]/g, "\\$&");
  }
  return new RegExp(`^${out}$`);
}

export function bytes(size) {
  if (size == null) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = size, unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
  return `${value.toFixed(unit && value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function age(iso) {
  if (!iso) return "";
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 90) return "just now";
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 129600) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} days ago`;
}
