// The catalog editor's forms: show only the fields that apply to the chosen price model and entitlement, and
// propose a key from the name while the key is still empty. The server validates everything either way.
(function () {
  function choice(form, name) {
    var checked = form.querySelector("[name='" + name + "']:checked");
    var field = checked || form.querySelector("select[name='" + name + "']");
    return field ? field.value : "";
  }
  function refresh(form) {
    form.querySelectorAll("[data-show-field]").forEach(function (row) {
      var wanted = row.dataset.showValues.split(" ");
      var shown = wanted.indexOf(choice(form, row.dataset.showField)) >= 0;
      row.hidden = !shown && !row.classList.contains("errors");
    });
    form.querySelectorAll("fieldset[data-group]").forEach(function (set) {
      var rows = set.querySelectorAll(".form-row");
      set.hidden = rows.length > 0 && Array.prototype.every.call(rows, function (r) { return r.hidden; });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form.om-editor-form");
    if (!form) return;
    refresh(form);
    form.addEventListener("change", function () { refresh(form); });
    var name = form.querySelector("input[name='name']"), key = form.querySelector("input[name='key']");
    if (name && key && !key.value) {
      var proposed = "";
      name.addEventListener("input", function () {
        if (key.value !== proposed) return;  // the operator typed a key of their own
        proposed = name.value.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 64);
        key.value = proposed;
      });
    }
  });
})();
