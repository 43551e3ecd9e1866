// Documents shown as they read: Markdown headings, lists, quotes, code and emphasis, built
// with DOM calls from ranges of the document's text (no HTML is ever parsed, so a document
// cannot run anything), with a passage of the text highlighted wherever it falls.

const FENCE = /^ {0,3}(`{3,}|~{3,})/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+|$)/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const ITEM = /^( {0,3})([-*+]|\d{1,9}[.)])([ \t]+|$)/;
const QUOTE = /^ {0,3}>[ \t]?/;
const LINK = /\[([^\]\n]*)\]\(([^()\s]*)(?:\s+"[^"\n]*")?\)/y;

/** The lines of a text with their offsets: {start, end} (end before the line break). */
function lines(text) {
  const out = [];
  let start = 0;
  for (;;) {
    const end = text.indexOf("\n", start);
    if (end === -1) {
      out.push({ start, end: text.length });
      return out;
    }
    out.push({ start, end: end > start && text[end - 1] === "\r" ? end - 1 : end });
    start = end + 1;
  }
}

function trimmed(text, start, end) {
  while (start < end && /\s/.test(text[start])) start += 1;
  while (end > start && /\s/.test(text[end - 1])) end -= 1;
  return [start, end];
}

/**
 * The blocks of a Markdown text, each holding the ranges ([start, end] offsets into `text`)
 * of the text it shows: headings {type: "heading", level, ranges}, paragraphs, quotes and
 * code {type, ranges}, lists {type: "list", ordered, first, items: [ranges]}, rules. Pure.
 */
export function markdownBlocks(text) {
  const all = lines(text);
  const blocks = [];
  let i = 0;
  const line = (k) => text.slice(all[k].start, all[k].end);
  const blank = (k) => !line(k).trim();
  const startsBlock = (k) => {
    const s = line(k);
    return FENCE.test(s) || HEADING.test(s) || RULE.test(s) || ITEM.test(s) || QUOTE.test(s);
  };
  while (i < all.length) {
    const s = line(i);
    const { start, end } = all[i];
    let m;
    if (!s.trim()) {
      i += 1;
    } else if ((m = FENCE.exec(s))) {
      const fence = m[1];
      let k = i + 1;
      while (k < all.length && !line(k).trimStart().startsWith(fence)) k += 1;
      const inner = k > i + 1 ? [[all[i + 1].start, all[k - 1].end]] : [];
      blocks.push({ type: "code", ranges: inner });
      i = Math.min(k + 1, all.length);
    } else if ((m = HEADING.exec(s))) {
      let [a, b] = trimmed(text, start + m[0].length, end);
      const closing = /[ \t]#+$/.exec(text.slice(a, b));
      if (closing) [a, b] = trimmed(text, a, b - closing[0].length);
      blocks.push({ type: "heading", level: m[1].length, ranges: [[a, b]] });
      i += 1;
    } else if (RULE.test(s)) {
      blocks.push({ type: "rule", ranges: [] });
      i += 1;
    } else if (ITEM.test(s)) {
      const ordered = /\d/.test(ITEM.exec(s)[2]);
      const items = [];
      let first = 1;
      while (i < all.length && (m = ITEM.exec(line(i))) && /\d/.test(m[2]) === ordered) {
        if (!items.length && ordered) first = Number.parseInt(m[2], 10);
        const ranges = [trimmed(text, all[i].start + m[0].length, all[i].end)];
        i += 1;
        // Lines that follow an item without a blank line or a marker continue it.
        while (i < all.length && !blank(i) && !startsBlock(i)) {
          ranges.push(trimmed(text, all[i].start, all[i].end));
          i += 1;
        }
        items.push(ranges.filter(([a, b]) => b > a));
        while (i < all.length && blank(i) && i + 1 < all.length && ITEM.test(line(i + 1))) i += 1;
      }
      blocks.push({ type: "list", ordered, first, items });
    } else if (QUOTE.test(s)) {
      const ranges = [];
      while (i < all.length && (m = QUOTE.exec(line(i)))) {
        const range = trimmed(text, all[i].start + m[0].length, all[i].end);
        if (range[1] > range[0]) ranges.push(range);
        i += 1;
      }
      blocks.push({ type: "quote", ranges });
    } else {
      let k = i;
      while (k + 1 < all.length && !blank(k + 1) && !startsBlock(k + 1)) k += 1;
      blocks.push({ type: "paragraph", ranges: [trimmed(text, start, all[k].end)] });
      i = k + 1;
    }
  }
  return blocks;
}

/**
 * The visible runs of inline Markdown in text[start:end]: {start, end, strong, em, code, href}.
 * Delimiters (**, _, `, the link's target) are not shown; a delimiter without its closing
 * twin is shown as it is. Pure.
 */
export function inlineRuns(text, start, end) {
  const runs = [];
  const style = { strong: false, em: false };
  let from = start;
  const push = (a, b, extra = {}) => {
    if (b > a) runs.push({ start: a, end: b, strong: style.strong, em: style.em, code: false, href: null, ...extra });
  };
  const closes = (delimiter, at) => text.slice(at, end).includes(delimiter);
  let i = start;
  while (i < end) {
    const c = text[i];
    if (c === "\\" && i + 1 < end && /[\\`*_[\]()#>!-]/.test(text[i + 1])) {
      push(from, i);
      from = i + 1;
      i += 2;
    } else if (c === "`") {
      const close = text.indexOf("`", i + 1);
      if (close === -1 || close >= end) {
        i += 1;
        continue;
      }
      push(from, i);
      push(i + 1, close, { code: true });
      from = i = close + 1;
    } else if ((c === "*" || c === "_") && text[i + 1] === c) {
      const twin = c + c;
      if (style.strong || closes(twin, i + 2)) {
        push(from, i);
        style.strong = !style.strong;
        from = i = i + 2;
      } else i += 2;
    } else if (c === "*" || (c === "_" && !/\w/.test(text[i - 1] || "") !== !/\w/.test(text[i + 1] || ""))) {
      if (style.em || (closes(c, i + 1) && !/\s/.test(text[i + 1] || " "))) {
        push(from, i);
        style.em = !style.em;
        from = i = i + 1;
      } else i += 1;
    } else if (c === "[" || (c === "!" && text[i + 1] === "[")) {
      const at = c === "!" ? i + 1 : i;
      LINK.lastIndex = at;
      const m = LINK.exec(text);
      if (!m || at + m[0].length > end) {
        i += 1;
        continue;
      }
      push(from, i);
      const href = c === "[" && /^(https?:|mailto:)/i.test(m[2]) ? m[2] : null;
      push(at + 1, at + 1 + m[1].length, { href });
      from = i = at + m[0].length;
    } else i += 1;
  }
  push(from, end);
  return runs;
}

const HEADING_TAGS = ["h3", "h4", "h5", "h6", "h6", "h6"];

/**
 * A document's text as DOM nodes, Markdown rendered when `markdown` is true, with
 * text[highlight.start:highlight.end] in <mark> elements (the first with id "highlight").
 * Returns {node, marks}.
 */
export function renderDocument(text, { markdown = false, highlight = null } = {}) {
  const marks = [];
  const pieces = (parent, a, b, wrap = (n) => n) => {
    // Split [a, b) at the highlight's edges, marking what falls inside.
    const cuts = [a];
    if (highlight) for (const edge of [highlight.start, highlight.end]) if (edge > a && edge < b) cuts.push(edge);
    cuts.push(b);
    for (let k = 0; k + 1 < cuts.length; k += 1) {
      const [x, y] = [cuts[k], cuts[k + 1]];
      if (y <= x) continue;
      let node = document.createTextNode(text.slice(x, y));
      if (highlight && x >= highlight.start && y <= highlight.end) {
        const mark = document.createElement("mark");
        mark.className = "passage";
        if (!marks.length) mark.id = "highlight";
        mark.append(node);
        marks.push(mark);
        node = mark;
      }
      parent.append(wrap(node));
    }
  };
  const root = document.createElement("div");
  if (!markdown) {
    root.className = "plain";
    pieces(root, 0, text.length);
    return { node: root, marks };
  }
  root.className = "markdown";
  const inline = (parent, [a, b], plain = false) => {
    if (plain) {
      pieces(parent, a, b);
      return;
    }
    for (const run of inlineRuns(text, a, b)) {
      pieces(parent, run.start, run.end, (node) => {
        let out = node;
        if (run.code) out = wrapIn("code", out);
        if (run.em) out = wrapIn("em", out);
        if (run.strong) out = wrapIn("strong", out);
        if (run.href) {
          const link = wrapIn("a", out);
          link.href = run.href;
          link.rel = "noopener noreferrer";
          link.target = "_blank";
          out = link;
        }
        return out;
      });
    }
  };
  const ranges = (parent, list, plain = false) =>
    list.forEach((range, k) => {
      if (k) parent.append(document.createTextNode(plain ? "\n" : " "));
      inline(parent, range, plain);
    });
  for (const block of markdownBlocks(text)) {
    let node;
    if (block.type === "heading") {
      node = document.createElement(HEADING_TAGS[block.level - 1]);
      ranges(node, block.ranges);
    } else if (block.type === "paragraph") {
      node = document.createElement("p");
      ranges(node, block.ranges);
    } else if (block.type === "quote") {
      node = document.createElement("blockquote");
      ranges(node, block.ranges);
    } else if (block.type === "code") {
      node = document.createElement("pre");
      const code = document.createElement("code");
      ranges(code, block.ranges, true);
      node.append(code);
    } else if (block.type === "rule") {
      node = document.createElement("hr");
    } else {
      node = document.createElement(block.ordered ? "ol" : "ul");
      if (block.ordered && block.first !== 1) node.start = block.first;
      for (const item of block.items) {
        const li = document.createElement("li");
        ranges(li, item);
        node.append(li);
      }
    }
    root.append(node);
  }
  // A passage only in what Markdown hides (its syntax) is still shown, on its own.
  if (highlight && !marks.length) {
    const mark = document.createElement("mark");
    mark.className = "passage";
    mark.id = "highlight";
    mark.textContent = text.slice(highlight.start, highlight.end);
    marks.push(mark);
    root.prepend(mark);
  }
  return { node: root, marks };
}

function wrapIn(tag, child) {
  const node = document.createElement(tag);
  node.append(child);
  return node;
}

/** Whether a document id names a Markdown file. */
export function isMarkdown(id) {
  return /\.(md|markdown)$/i.test(id || "");
}
