// pyasp-screen serve: the page works without this script (forms post and the server renders
// the answer). With it, a what-if answer replaces only its own panel, as soon as a value changes.
(function () {
  "use strict";
  const box = document.getElementById("graph-box");
  const zoom = document.getElementById("graph-zoom");
  if (box && zoom) {
    zoom.hidden = false;
    zoom.addEventListener("click", () => {
      const fit = box.classList.toggle("fit");
      zoom.textContent = fit ? "full size" : "fit to width";
    });
  }
})();

(function () {
  "use strict";
  const form = document.getElementById("whatif-form");
  const panel = document.getElementById("whatif-result");
  if (!form || !panel || !window.fetch) return;

  let timer = null;
  let sequence = 0;

  function hasEdit() {
    const data = new FormData(form);
    for (const [key, value] of data.entries()) {
      if ((key === "set.value" || key === "unset") && String(value).trim()) return true;
    }
    for (const el of form.querySelectorAll("[name^='param.']")) {
      if (el.value !== el.defaultValue || (el.tagName === "SELECT" && !el.options[el.selectedIndex].defaultSelected)) return true;
    }
    return false;
  }

  function markCriteria() {
    document.querySelectorAll("tr.whatif-changed").forEach((row) => {
      row.classList.remove("whatif-changed");
      row.querySelectorAll(".whatif-new").forEach((n) => n.remove());
    });
    panel.querySelectorAll("[data-changed]").forEach((item) => {
      const row = document.getElementById("crit-" + item.dataset.changed);
      const after = item.querySelectorAll(".status")[1];
      if (!row || !after) return;
      row.classList.add("whatif-changed");
      const badge = after.cloneNode(true);
      badge.classList.add("whatif-new");
      badge.title = "what if";
      badge.textContent = "→ " + badge.textContent;
      row.querySelector("td").appendChild(badge);
    });
  }

  async function run() {
    if (!hasEdit()) {
      panel.innerHTML = "";
      markCriteria();
      return;
    }
    const mine = ++sequence;
    panel.classList.add("busy");
    try {
      const response = await fetch(form.action, {
        method: "POST", body: new FormData(form), headers: {"X-Fragment": "1"},
      });
      const html = await response.text();
      if (mine !== sequence) return; // a newer change is on its way
      panel.innerHTML = html;
      markCriteria();
    } catch (err) {
      if (mine === sequence) panel.innerHTML = '<p class="error-line">the server did not answer: ' +
        String(err).replace(/[<&>]/g, "") + "</p>";
    } finally {
      if (mine === sequence) panel.classList.remove("busy");
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(timer);
    run();
  });
  form.addEventListener("change", () => {
    clearTimeout(timer);
    timer = setTimeout(run, 250);
  });
})();
