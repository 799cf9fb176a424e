// Draws every <canvas data-chart="ID"> from the JSON in <script id="ID">:
// {"type": "line"|"bar", "labels": [...], "datasets": {"name": [numbers]}, "stacked": bool}.
// The charts are kept on window.modelyardCharts (the browser tests read them).
(function () {
  "use strict";
  var palette = ["#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c",
                 "#0891b2", "#ca8a04", "#db2777", "#64748b"];

  function draw(canvas) {
    if (canvas.dataset.drawn) { return; }
    var source = document.getElementById(canvas.dataset.chart);
    if (!source) { return; }
    var spec = JSON.parse(source.textContent);
    var names = Object.keys(spec.datasets);
    var datasets = names.map(function (name, i) {
      var color = palette[i % palette.length];
      return {label: name, data: spec.datasets[name], borderColor: color,
              backgroundColor: color + (spec.type === "line" ? "33" : "cc"),
              fill: spec.type === "line" && spec.stacked, tension: 0.2, pointRadius: 2};
    });
    var stacked = Boolean(spec.stacked);
    var chart = new window.Chart(canvas, {
      type: spec.type,
      data: {labels: spec.labels, datasets: datasets},
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        scales: {x: {stacked: stacked}, y: {stacked: stacked, beginAtZero: true,
                 title: {display: Boolean(spec.y), text: spec.y || ""}}},
        plugins: {legend: {position: "bottom"}}
      }
    });
    canvas.dataset.drawn = "1";
    window.modelyardCharts.push(chart);
  }

  function drawAll(root) {
    (root || document).querySelectorAll("canvas[data-chart]").forEach(draw);
  }

  window.modelyardCharts = window.modelyardCharts || [];
  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSettle", function (e) { drawAll(e.target); });
})();
