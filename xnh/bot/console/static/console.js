// Live preview of a new campaign: the form is posted (with its CSRF token) to the preview address
// as the clerk types, and the server's rendered preview replaces the old one. Without script the
// 预览 button does the same with a page load.
(function () {
  var form = document.getElementById("campaign-form");
  if (!form || !window.fetch) return;
  var timer = null, seq = 0;
  function refresh() {
    var mine = ++seq;
    fetch(form.dataset.preview, { method: "POST", body: new FormData(form), credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        if (mine !== seq) return;
        var old = document.getElementById("preview");
        var box = document.createElement("div");
        box.innerHTML = html;
        old.replaceWith(box.firstElementChild);
      });
  }
  form.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(refresh, 400); });
})();
