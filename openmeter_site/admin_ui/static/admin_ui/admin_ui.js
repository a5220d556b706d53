// Times in the back office are shown in the operator's time zone: keep the browser's zone in a cookie that the
// server reads (openmeter_site/admin_ui/middleware.py), and reload once when it was missing or changed.
(function () {
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!zone || !/^[A-Za-z0-9_+\/-]+$/.test(zone)) return;  // IANA names need no cookie escaping
  var match = document.cookie.match(/(?:^|; )om_tz=([^;]*)/);
  if (match && match[1] === zone) return;
  document.cookie = "om_tz=" + zone + "; path=/admin/; max-age=31536000; SameSite=Lax";
  var shown = document.getElementById("om-zone");
  if (shown && shown.dataset.zone !== zone && !sessionStorage.getItem("om_tz_reloaded")) {
    sessionStorage.setItem("om_tz_reloaded", "1");
    window.location.reload();
  }
})();
