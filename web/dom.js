// Building the page's elements. Text is always set as text (textContent), never as HTML.

/**
 * An element with attributes, listeners ("onclick": fn) and children. `text` sets its text,
 * `class` its class; every other attribute is set as given.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) if (child !== null && child !== undefined && child !== false) node.append(child);
  return node;
}

/** Make `parent`'s children exactly `wanted`, moving only the nodes out of place (a node
 * left in place keeps its focus). */
export function reconcile(parent, wanted) {
  let cursor = parent.firstChild;
  for (const node of wanted) {
    if (node === cursor) {
      cursor = cursor.nextSibling;
      continue;
    }
    parent.insertBefore(node, cursor);
  }
  while (cursor) {
    const next = cursor.nextSibling;
    cursor.remove();
    cursor = next;
  }
}

/** Close a modal dialog when a click lands on its backdrop (outside its box). */
export function closeOnBackdrop(dialog, close = () => dialog.close()) {
  dialog.addEventListener("click", (event) => {
    if (event.target !== dialog) return;
    const box = dialog.getBoundingClientRect();
    const inside =
      event.clientX >= box.left && event.clientX <= box.right && event.clientY >= box.top && event.clientY <= box.bottom;
    if (!inside) close();
  });
}

const SVG = "http://www.w3.org/2000/svg";
const THUMB = "M8 11 11.5 3.5c1.3 0 2 1 1.8 2.3L12.8 9h5.7c1.1 0 1.9 1 1.7 2.1l-1.3 7.5c-.2.8-.9 1.4-1.7 1.4H8zM4 11h4v9H4z";

/** A thumb drawn in the text's colour, up or down, hidden from screen readers (the button
 * holding it has the name). */
export function thumb(direction) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "16");
  svg.setAttribute("height", "16");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", THUMB);
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", "currentColor");
  path.setAttribute("stroke-width", "1.8");
  path.setAttribute("stroke-linejoin", "round");
  if (direction === "down") path.setAttribute("transform", "rotate(180 12 12)");
  svg.append(path);
  return svg;
}
