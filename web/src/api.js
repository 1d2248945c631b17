// Talking to tide serve's API: JSON with an optional bearer token, and server-sent events read
// from a fetch() body (EventSource cannot send an Authorization header).

const TOKEN_KEY = 'tide.token';

export function token() {
  return localStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(value) {
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

export class HttpError extends Error {
  constructor(path, status, message) {
    super(`${path}: ${status}${message ? ' ' + message : ''}`);
    this.status = status;
  }
}

function headers() {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

async function check(path, response) {
  if (response.ok) return response;
  let message = '';
  try {
    const body = await response.json();
    message = body?.error?.message ?? '';
  } catch {
    // not JSON
  }
  throw new HttpError(path, response.status, message);
}

export async function getJson(path) {
  const response = await check(path, await fetch(path, { headers: headers() }));
  return response.json();
}

// Splits a text/event-stream into events: blocks separated by a blank line, with `event:` and
// `data:` fields (several data lines are joined by newlines).
export function parseEvents(buffer) {
  const events = [];
  let at;
  while ((at = buffer.indexOf('\n\n')) >= 0) {
    const block = buffer.slice(0, at);
    buffer = buffer.slice(at + 2);
    let event = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length) events.push({ event, data: data.join('\n') });
  }
  return { events, rest: buffer };
}

// Calls onEvent(name, parsedJson) for every event until the stream ends or `signal` aborts.
export async function streamEvents(path, onEvent, signal) {
  const response = await check(path, await fetch(path, { headers: headers(), signal }));
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, '\n');
    const parsed = parseEvents(buffer);
    buffer = parsed.rest;
    for (const e of parsed.events) onEvent(e.event, JSON.parse(e.data));
  }
}
