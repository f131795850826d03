// The bookings calendar's parts (ui-calendar): vis-timeline's resource timeline (rows are
// GPUs, items are bookings, jobs and maintenance windows) with vis-data's DataSet, and
// moment's Japanese locale for the time axis. Exposed as window.KarimasuTimeline for
// frontend/static/karimasu/calendar.js.
import { DataSet } from "vis-data/peer";
import { Timeline } from "vis-timeline/peer";
import moment from "moment";
import "moment/locale/ja";
import "vis-timeline/styles/vis-timeline-graph2d.min.css";

moment.locale("en");
window.KarimasuTimeline = { DataSet, Timeline, moment };
