// Sorts a table.sortable by the column whose header is clicked (again: the other way round).
// The page reads the same without it: rows come in the order of the markdown, ranked in their
// rank column. Numbers compare as numbers ("75.46 ± 1.20", "[−1.20, +0.40]", "<0.001"), and
// empty cells ("–") stay last either way.
(function () {
  "use strict";
  function key(cell) {
    var text = (cell.getAttribute("data-sort") || cell.textContent).trim();
    if (text === "" || text === "\u2013") return null;
    var number = parseFloat(text.replace(/\u2212/g, "-").replace(/^[\[<>]/, ""));
    return isNaN(number) ? text.toLowerCase() : number;
  }
  function compare(a, b) {
    if (typeof a === typeof b) return a < b ? -1 : a > b ? 1 : 0;
    return typeof a === "number" ? -1 : 1;
  }
  function sort(table, th, column) {
    var descending = th.getAttribute("aria-sort") === "ascending";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (row) {
      return [key(row.cells[column]), row];
    });
    rows.sort(function (x, y) {
      if (x[0] === null || y[0] === null) return (x[0] === null) - (y[0] === null);
      var order = compare(x[0], y[0]);
      return descending ? -order : order;
    });
    rows.forEach(function (pair) { body.appendChild(pair[1]); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) {
      cell.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
      th.tabIndex = 0;
      th.classList.add("sorts");
      th.addEventListener("click", function () { sort(table, th, column); });
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          sort(table, th, column);
        }
      });
    });
  });
})();
