// Chart.js for the SQL editor's result charts: only what a bar or line chart of a result
// set needs is registered (tree-shaken), exposed as window.KarimasuCharts.
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
