// The team page's chart (scheduler/views.py team_page): booked and busy GPU-hours per week
// as grouped bars, drawn with Chart.js (the vendor bundle, window.KarimasuChart) from the
// JSON the page carries (json_script: no inline script, the CSP holds). The table under the
// chart holds the same numbers.
(() => {
  "use strict";
  const canvas = document.getElementById("usage-chart");
  const source = document.getElementById("usage-chart-data");
  if (!canvas || !source || !window.KarimasuChart) return;
  const data = JSON.parse(source.textContent);
  const colours = ["#2f6fde", "#1e8e3e", "#6b4fbb", "#9ad0a5"];
  new window.KarimasuChart(canvas, {
    type: "bar",
    data: {
      labels: data.labels,
      datasets: data.series.map((series, i) => ({
        label: series.label, data: series.data, backgroundColor: colours[i % colours.length],
      })),
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      scales: { y: { beginAtZero: true, title: { display: true, text: data.y_label } } },
      plugins: { legend: { position: "bottom" } },
    },
  });
  canvas.dataset.drawn = "1";
})();
