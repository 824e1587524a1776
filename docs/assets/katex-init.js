// Typeset the math that pymdownx.arithmatex (generic mode) leaves as \( \) and \[ \]
// inside .arithmatex elements, with the KaTeX copy served from this site.
(function () {
  function typeset() {
    document.querySelectorAll(".arithmatex").forEach(function (el) {
      renderMathInElement(el, {
        delimiters: [
          { left: "\\(", right: "\\)", display: false },
          { left: "\\[", right: "\\]", display: true },
        ],
        throwOnError: false,
      });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", typeset);
  } else {
    typeset();
  }
})();
