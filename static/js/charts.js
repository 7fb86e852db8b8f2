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

  // Plotly's own words (mode bar, date axes) follow the page's language, <html lang="...">.
  // Titles, axes and legends come translated from the server (gettext); these are the rest.
  var ZH_CN = {
    moduleType: "locale",
    name: "zh-CN",
    dictionary: {
      "Autoscale": "自动缩放",
      "Box Select": "框选",
      "Compare data on hover": "悬停时比较数据",
      "Double-click on legend to isolate one trace": "双击图例可只显示该系列",
      "Double-click to zoom back out": "双击恢复缩放",
      "Download plot": "下载图表",
      "Download plot as a PNG": "下载图表（PNG）",
      "Download plot as JSON": "下载图表（JSON）",
      "Lasso Select": "套索选择",
      "Pan": "平移",
      "Reset": "重置",
      "Reset axes": "重置坐标轴",
      "Reset view": "重置视图",
      "Reset views": "重置视图",
      "Share chart...": "分享图表…",
      "Show closest data on hover": "悬停时显示最近的数据",
      "Toggle Spike Lines": "显示/隐藏辅助线",
      "Toggle show closest data on hover": "切换悬停时显示最近的数据",
      "Zoom": "缩放",
      "Zoom in": "放大",
      "Zoom out": "缩小"
    },
    format: {
      days: ["星期日", "星期一", "星期二", "星期三", "星期四", "星期五", "星期六"],
      shortDays: ["周日", "周一", "周二", "周三", "周四", "周五", "周六"],
      months: ["1月", "2月", "3月", "4月", "5月", "6月", "7月", "8月", "9月", "10月", "11月", "12月"],
      shortMonths: ["1月", "2月", "3月", "4月", "5月", "6月", "7月", "8月", "9月", "10月", "11月", "12月"],
      date: "%Y-%m-%d"
    }
  };
  var registered = false;

  function locale() {
    var lang = (document.documentElement.lang || "en").toLowerCase();
    return lang.indexOf("zh") === 0 ? "zh-CN" : "en";
  }

  function narrow(layout) {
    // Phone width: smaller title and margins so the plot keeps its room.
    if (window.innerWidth >= 576) return layout;
    var copy = Object.assign({}, layout, {margin: {t: 70, r: 10, b: 40, l: 50}});
    if (copy.title) copy.title = Object.assign({}, copy.title, {font: {size: 13}});
    return copy;
  }

  function render(root) {
    if (!window.Plotly || !root || !root.querySelectorAll) return;
    if (!registered) {
      window.Plotly.register(ZH_CN);
      registered = true;
    }
    root.querySelectorAll("[data-plotly-figure]").forEach(function (element) {
      var source = document.getElementById(element.getAttribute("data-plotly-figure"));
      if (!source) return;
      var figure = JSON.parse(source.textContent);
      var layout = narrow(Object.assign({colorway: PALETTE, autosize: true}, figure.layout));
      window.Plotly.react(element, figure.data, layout, {
        responsive: true, displaylogo: false, locale: locale()
      });
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
