/* speclens report: the run page's interactions, on top of a page that reads without them.
 *
 *  - table.sortable: a click on a column header sorts its rows (numbers by the cell's
 *    data-value, text otherwise; a second click reverses; missing values last), aria-sort says
 *    how;
 *  - the modes table's filters (#modes-controls): text on label and summary, significant,
 *    stable;
 *  - .grid[data-page-size]: pages of that many figures with previous / next buttons;
 *  - the samples map (#samples-map), drawn from the JSON data island #samples-data: one
 *    circle per sample, a tooltip on hover (image, label), its details on click.
 *
 * Plain DOM, no library, nothing loaded from the network: the page opens from disk.
 */
(function () {
  "use strict";

  var SVG_NS = "http://www.w3.org/2000/svg";

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  /* ---- sortable tables ---- */

  function cellValue(row, col) {
    var td = row.cells[col];
    if (!td) return null;
    if (td.hasAttribute("data-value")) return Number(td.getAttribute("data-value"));
    var text = td.textContent.trim();
    return text === "" || text === "–" ? null : text.toLowerCase();
  }

  function compare(a, b, ascending) {
    if (a === null || b === null) return (a === null) - (b === null);  // missing: last
    var d = typeof a === "number" && typeof b === "number"
      ? a - b
      : String(a).localeCompare(String(b), undefined, { numeric: true });
    return ascending ? d : -d;
  }

  function sortBy(table, col) {
    var heads = table.tHead.rows[0].cells;
    var ascending = heads[col].getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(heads, function (th) { th.setAttribute("aria-sort", "none"); });
    heads[col].setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.map.call(body.rows, function (row, i) {
      return { row: row, i: i, v: cellValue(row, col) };
    });
    rows.sort(function (a, b) { return compare(a.v, b.v, ascending) || a.i - b.i; });
    rows.forEach(function (r) { body.appendChild(r.row); });
  }

  function makeSortable(table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      var name = th.textContent.trim();
      var button = el("button", { type: "button", title: "Sort by " + name }, name);
      th.textContent = "";
      th.appendChild(button);
      th.classList.add("sortable");
      th.setAttribute("aria-sort", "none");
      button.addEventListener("click", function () { sortBy(table, col); });
    });
  }

  /* ---- the modes table's filters ---- */

  function modeFilters() {
    var controls = document.getElementById("modes-controls");
    var table = document.getElementById("modes-table");
    if (!controls || !table) return;
    var text = document.getElementById("modes-filter");
    var significant = document.getElementById("modes-significant");
    var stable = document.getElementById("modes-stable");
    var count = document.getElementById("modes-count");
    function apply() {
      var q = text.value.trim().toLowerCase();
      var rows = table.tBodies[0].rows, shown = 0;
      Array.prototype.forEach.call(rows, function (row) {
        var ok = (!q || (row.getAttribute("data-search") || "").indexOf(q) >= 0) &&
          (!significant || !significant.checked || row.getAttribute("data-significant") === "1") &&
          (!stable || !stable.checked || row.getAttribute("data-stable") === "1");
        row.hidden = !ok;
        shown += ok ? 1 : 0;
      });
      count.textContent = shown === rows.length ? "" : shown + " of " + rows.length + " modes shown";
    }
    text.addEventListener("input", apply);
    [significant, stable].forEach(function (box) { if (box) box.addEventListener("change", apply); });
    controls.hidden = false;
  }

  /* ---- member pages ---- */

  function pageGrid(grid) {
    var size = Number(grid.getAttribute("data-page-size")) || 16;
    var figures = Array.prototype.slice.call(grid.children);
    if (figures.length <= size) return;
    var pages = Math.ceil(figures.length / size);
    var what = (grid.getAttribute("aria-label") || "members").toLowerCase();
    var prev = el("button", { type: "button", "aria-label": "Previous page of " + what }, "‹ previous");
    var next = el("button", { type: "button", "aria-label": "Next page of " + what }, "next ›");
    var status = el("span", { class: "muted", "aria-live": "polite" });
    var nav = el("nav", { class: "pager", "aria-label": "Pages of " + what });
    nav.append(prev, status, next);
    function show(page) {
      figures.forEach(function (f, i) { f.hidden = Math.floor(i / size) !== page; });
      prev.disabled = page === 0;
      next.disabled = page === pages - 1;
      status.textContent = (page * size + 1) + "–" + Math.min(figures.length, (page + 1) * size) +
        " of " + figures.length;
      grid.setAttribute("data-page", String(page));
    }
    prev.addEventListener("click", function () { show(Number(grid.getAttribute("data-page")) - 1); });
    next.addEventListener("click", function () { show(Number(grid.getAttribute("data-page")) + 1); });
    grid.after(nav);
    show(0);
  }

  /* ---- the samples map ---- */

  function colour(data, i) {
    var mode = data.mode[i];
    return data.colours[mode === null ? "none" : String(mode)];
  }

  function modeText(data, i) {
    return data.mode[i] === null ? "no mode" : "mode #" + data.mode[i];
  }

  function agreementText(data, i) {
    return data.agreement[i] === null ? "" : "agreement " + data.agreement[i].toFixed(2);
  }

  function showTip(tip, wrap, data, i, event) {
    if (tip.getAttribute("data-i") !== String(i)) {  // a new point: its image and label
      tip.replaceChildren();
      if (data.thumb[i]) tip.append(el("img", { src: data.thumb[i], alt: "" }));
      tip.append(el("b", { class: "tip-label" }, data.label[i] || data.id[i]));
      tip.append(el("div", {}, [modeText(data, i), agreementText(data, i)].filter(Boolean).join(" · ")));
      tip.setAttribute("data-i", String(i));
    }
    tip.hidden = false;
    var box = wrap.getBoundingClientRect();
    var x = event.clientX - box.left + 14, y = event.clientY - box.top + 14;
    if (x + tip.offsetWidth > box.width) x = Math.max(0, x - tip.offsetWidth - 28);
    if (y + tip.offsetHeight > box.height) y = Math.max(0, y - tip.offsetHeight - 28);
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  }

  function showRow(row) {
    var details = document.getElementById("samples-details");
    var tr = document.getElementById("sample-" + row);
    if (!tr) return;
    if (details) details.open = true;
    document.querySelectorAll("tr.hl").forEach(function (r) { r.classList.remove("hl"); });
    tr.classList.add("hl");
    tr.scrollIntoView({ block: "center" });
  }

  function showDetail(panel, data, i) {
    panel.replaceChildren();
    if (data.thumb[i]) panel.append(el("img", { src: data.thumb[i], alt: data.label[i] || data.id[i] }));
    panel.append(el("h3", {}, data.label[i] || "(no label)"));
    var list = el("dl");
    var rows = [["sample", data.id[i]], ["caption", data.caption[i]],
      ["local agreement", data.agreement[i] === null ? "–" : data.agreement[i].toFixed(3)]];
    rows.forEach(function (r) { if (r[1]) list.append(el("dt", {}, r[0]), el("dd", {}, r[1])); });
    var mode = el("dd");
    if (data.mode[i] === null) mode.textContent = "none";
    else mode.append(el("a", { href: "#mode-" + data.mode[i] }, "mode #" + data.mode[i]));
    list.append(el("dt", {}, "top mode"), mode);
    panel.append(list);
    if (data.row[i] >= 0) {
      var button = el("button", { type: "button" }, "Show in the samples table");
      button.addEventListener("click", function () { showRow(data.row[i]); });
      panel.append(button);
    }
  }

  function drawMap() {
    var island = document.getElementById("samples-data");
    var svg = document.getElementById("samples-map");
    if (!island || !svg) return;
    var data = JSON.parse(island.textContent);
    var wrap = document.getElementById("map-wrap");
    var tip = document.getElementById("map-tip");
    var panel = document.getElementById("map-detail");
    var points = document.createDocumentFragment();
    for (var i = 0; i < data.x.length; i++) {
      var c = document.createElementNS(SVG_NS, "circle");
      c.setAttribute("cx", data.x[i]);
      c.setAttribute("cy", data.y[i]);
      c.setAttribute("r", data.r);
      c.setAttribute("fill", colour(data, i));
      c.setAttribute("data-i", String(i));
      points.appendChild(c);
    }
    svg.appendChild(points);
    svg.setAttribute("data-points", String(data.x.length));
    function index(event) {
      var t = event.target;
      return t && t.getAttribute && t.hasAttribute("data-i") ? Number(t.getAttribute("data-i")) : -1;
    }
    svg.addEventListener("mousemove", function (event) {
      var i = index(event);
      if (i < 0) { tip.hidden = true; return; }
      showTip(tip, wrap, data, i, event);
    });
    svg.addEventListener("mouseleave", function () { tip.hidden = true; });
    svg.addEventListener("click", function (event) {
      var i = index(event);
      if (i < 0) return;
      svg.querySelectorAll("circle.sel").forEach(function (s) { s.classList.remove("sel"); });
      event.target.classList.add("sel");
      showDetail(panel, data, i);
    });
  }

  function start() {
    document.querySelectorAll("table.sortable").forEach(makeSortable);
    modeFilters();
    document.querySelectorAll(".grid[data-page-size]").forEach(pageGrid);
    drawMap();
    document.documentElement.setAttribute("data-report-ready", "1");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
