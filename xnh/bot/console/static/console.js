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

// A page of something that changes (a campaign sending, an import running) asks its poll address every
// two seconds, sending the token it was drawn with as If-None-Match: the server answers 304 from one
// row while nothing changed, and the page reloads only when something did.
(function () {
  var el = document.querySelector("[data-poll]");
  if (!el || !window.fetch) return;
  var url = el.dataset.poll, token = el.dataset.token;
  function look() {
    fetch(url, { headers: { "If-None-Match": '"' + token + '"' }, credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 200) { window.location.reload(); return; }
        setTimeout(look, 2000);
      })
      .catch(function () { setTimeout(look, 5000); });
  }
  setTimeout(look, 1000);
})();
