// Chart.js for the SQL editor's result charts, the team view and the job page: only what a
// bar or line chart needs is registered (tree-shaken), exposed as window.KarimasuCharts
// (the editor) and window.KarimasuChart.
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
} from "chart.js";

Chart.register(
  BarController,
  BarElement,
  CategoryScale,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip
);

window.KarimasuCharts = { Chart };
window.KarimasuChart = Chart; // the team view and the job page (frontend/static/karimasu/team.js)
