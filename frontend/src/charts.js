// Charts of the team view and the job page (ui-calendar): Chart.js with only the bar and
// line charts registered. Exposed as window.KarimasuChart for frontend/static/karimasu/team.js.
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
  Tooltip,
);
window.KarimasuChart = Chart;
