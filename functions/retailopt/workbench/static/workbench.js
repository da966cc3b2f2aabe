// retailopt workbench: the only script. Pages work without it; it adds "select all".
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var all = document.getElementById("select-all");
  if (!all) { return; }
  all.addEventListener("change", function () {
    document.querySelectorAll("input[type=checkbox][name=line]").forEach(function (box) {
      box.checked = all.checked;
    });
  });
});
