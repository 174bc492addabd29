// Render the formulas pymdownx.arithmatex (generic mode) marks: \( ... \) inline and
// \[ ... \] on their own line, with the vendored KaTeX; again after each instant page load.
function renderMath() {
  for (const el of document.querySelectorAll(".arithmatex")) {
    if (el.dataset.rendered) continue;
    const text = el.textContent.trim(), display = text.startsWith("\\[");
    katex.render(text.slice(2, -2), el, {displayMode: display, throwOnError: false});
    el.dataset.rendered = "yes";
  }
}
if (typeof document$ !== "undefined") document$.subscribe(renderMath);  // Material's page event
else document.addEventListener("DOMContentLoaded", renderMath);
