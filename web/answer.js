// Turning an answer's text into text and citation pieces. Pure: no DOM, no network.

const MARKER = /\[(\d+(?:\s*,\s*\d+)*)\]/g;
// While an answer streams, a "[" not yet closed may be the start of a marker.
const PARTIAL = /\[[\d,\s]*$/;

/**
 * Split an answer into pieces: {type: "text", text} and {type: "cite", id}.
 * Only markers whose every number is a returned citation become "cite" pieces; any
 * other bracket stays text. While streaming, a trailing half-typed marker is hidden.
 */
export function parseAnswer(text, citations, { streaming = false } = {}) {
  const known = new Set((citations || []).map((c) => c.id));
  const body = streaming ? text.replace(PARTIAL, "") : text;
  const pieces = [];
  let last = 0;
  for (const match of body.matchAll(MARKER)) {
    const ids = match[1].split(",").map((n) => Number.parseInt(n.trim(), 10));
    if (!ids.every((id) => known.has(id))) continue;
    if (match.index > last) pieces.push({ type: "text", text: body.slice(last, match.index) });
    for (const id of ids) pieces.push({ type: "cite", id });
    last = match.index + match[0].length;
  }
  if (last < body.length) pieces.push({ type: "text", text: body.slice(last) });
  return pieces;
}

/** The citations in the order of their numbers, each number once. */
export function numberedSources(citations) {
  const byId = new Map();
  for (const c of citations || []) if (!byId.has(c.id)) byId.set(c.id, c);
  return [...byId.values()].sort((a, b) => a.id - b.id);
}

/** The answer and its sources as plain text, for the clipboard. */
export function answerAsText(text, citations, sourcesLabel) {
  const sources = numberedSources(citations).map((c) => {
    const where = c.section ? `${c.title} — ${c.section}` : c.title;
    return `[${c.id}] ${where} (${c.document}): « ${c.text} »`;
  });
  return sources.length ? `${text}\n\n${sourcesLabel}\n${sources.join("\n")}` : text;
}

/** Parse a Server-Sent Events buffer: complete events and the unparsed rest. */
export function parseEvents(buffer) {
  const events = [];
  const blocks = buffer.split(/\r?\n\r?\n/);
  const rest = blocks.pop();
  for (const block of blocks) {
    let event = "message";
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (data.length) events.push({ event, data: data.join("\n") });
  }
  return { events, rest };
}
