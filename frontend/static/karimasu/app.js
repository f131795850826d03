// Behaviour shared by every page, kept out of the HTML so that the Content-Security-Policy
// can forbid inline script: a <select data-autosubmit> submits its form when changed.
document.addEventListener("change", (event) => {
  const target = event.target;
  if (target instanceof HTMLSelectElement && target.hasAttribute("data-autosubmit")) {
    target.form?.submit();
  }
});

// A form marked data-confirm="question" (cancel a job, give back or cancel a booking) asks
// first; a listener on the document keeps working when live.js swaps the form.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement)) return;
  const question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) event.preventDefault();
});

// A session page that is not stopped reloads itself (state, time left).
(function () {
  var marker = document.getElementById("session-refresh");
  if (!marker) return;
  var every = parseInt(marker.getAttribute("data-every"), 10) || 5000;
  window.setTimeout(function () { window.location.reload(); }, every);
})();
