/* mr2probe dashboard router: "/" jobs, runs and data sets (home.js); "/runs/{id}?compare={id}" one report
   (run.js); "/launch" the launch form (launch.js); "/compare?base={id}&other={id}..." several runs (compare.js). The API token (when the server has one) is kept in this
   tab's sessionStorage (dash.js). */
(function () {
  "use strict";
  const { TOKEN_KEY, showBanner } = window.Dash;
  const main = document.getElementById("main");

  document.getElementById("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = document.getElementById("token-input");
    if (input.value) sessionStorage.setItem(TOKEN_KEY, input.value);
    input.value = "";
    showBanner("");
    route();
  });
  document.getElementById("token-clear").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); route(); });

  function route() {
    window.Home.stop();
    const path = location.pathname;
    const run = path.match(/^\/runs\/([^/]+)\/?$/);
    // the page's own link marked for a screen reader too (aria-current; its highlight alone said nothing)
    for (const a of document.querySelectorAll("header nav a")) {
      const here = a.getAttribute("href") === (run ? "/" : path);
      a.classList.toggle("active", here);
      if (here) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    }
    const done = run ? window.RunPage.render(main, decodeURIComponent(run[1]))
      : /^\/launch\/?$/.test(path) ? window.Launch.render(main)
      : /^\/compare\/?$/.test(path) ? window.ComparePage.render(main) : window.Home.render(main);
    Promise.resolve(done).catch((e) => {
      if (e.status === 401) {  // the banner asks for the token; nothing of the page stays (or "Loading…")
        main.replaceChildren(window.Dash.h("section", { class: "card" }, window.Dash.needsToken()));
        main.setAttribute("data-ready", "needs-token");
        return;
      }
      showBanner("Could not load: " + e.message, true);
      // the page's "Loading…" stayed under the banner of a deleted run (a new-user round): say what is not there
      main.replaceChildren(window.Dash.h("section", { class: "card" }, window.Dash.h("p", { class: "muted", id: "load-failed" },
        notFound(e) ? "Not found: it may have been deleted. " : "This page could not be loaded. "),
        window.Dash.h("a", { href: "/" }, "All jobs and runs")));
      main.setAttribute("data-ready", "error");
    });
  }

  // a 404, or a 422 of the address's id itself (not of the service's form: /runs/run%20x), is a page not there
  function notFound(e) {
    return e.status === 404 || (e.status === 422 && Array.isArray(e.detail) && e.detail.length > 0
      && e.detail.every((d) => Array.isArray(d.loc) && d.loc[0] === "path"));
  }

  route();
})();
