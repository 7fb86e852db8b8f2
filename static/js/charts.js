/* Draws the pages' Plotly figures, served locally (no CDN).
 *
 * A figure is a json_script element holding {data, layout}; the element that shows it names
 * it: <div data-plotly-figure="ID-of-the-json_script"></div>. Figures are drawn on page load
 * and again whenever htmx swaps in new content (e.g. the live training-progress fragment).
 * The palette is Okabe-Ito (colour-blind safe), the same list as campaigns/charts.py PALETTE.
 */
(function () {
  "use strict";
  var PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"];

  function narrow(layout) {
    // Phone width: smaller title and margins so the plot keeps its room.
    if (window.innerWidth >= 576) return layout;
    var copy = Object.assign({}, layout, {margin: {t: 70, r: 10, b: 40, l: 50}});
    if (copy.title) copy.title = Object.assign({}, copy.title, {font: {size: 13}});
    return copy;
  }

  function render(root) {
    if (!window.Plotly || !root || !root.querySelectorAll) return;
    root.querySelectorAll("[data-plotly-figure]").forEach(function (element) {
      var source = document.getElementById(element.getAttribute("data-plotly-figure"));
      if (!source) return;
      var figure = JSON.parse(source.textContent);
      var layout = narrow(Object.assign({colorway: PALETTE, autosize: true}, figure.layout));
      window.Plotly.react(element, figure.data, layout, {responsive: true, displaylogo: false});
    });
  }

  window.PromoCharts = {palette: PALETTE, render: render};
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { render(document); });
  } else {
    render(document);
  }
  document.addEventListener("htmx:load", function (event) { render(event.detail.elt); });
})();
