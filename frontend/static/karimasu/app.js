// Behaviour shared by every page, kept out of the HTML so that the Content-Security-Policy
// can forbid inline script: a <select data-autosubmit> submits its form when changed.
document.addEventListener("change", (event) => {
  const target = event.target;
  if (target instanceof HTMLSelectElement && target.hasAttribute("data-autosubmit")) {
    target.form?.submit();
  }
});
