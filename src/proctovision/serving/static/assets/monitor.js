// The monitoring page: admins acknowledge an alarm with a note (a file: the Content-Security-Policy allows no inline script).
const csrf = (document.cookie.match(/(?:^|; )csrf_token=([^;]*)/) || [])[1] || "";
document.querySelectorAll("form.ack").forEach((form) => form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const response = await fetch(`monitor/alarms/${form.dataset.alarm}/ack`, {method: "POST",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": decodeURIComponent(csrf)},
    body: JSON.stringify({note: form.note.value})});
  if (response.ok) { location.reload(); } else { form.insertAdjacentText("beforeend", " " + (await response.json()).detail); }
}));
