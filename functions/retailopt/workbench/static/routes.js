// retailopt workbench: the routes page's map (Leaflet, served by the app). The page works without
// it: the timeline and the table carry the same stops. Every text goes in as text, never as HTML.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var box = document.getElementById("route-map");
  if (!box || !window.L) { return; }
  fetch(box.dataset.src, { credentials: "same-origin" })
    .then(function (answer) { return answer.json(); })
    .then(draw)
    .catch(function () { say("The map could not be loaded; the timeline and the table below show the same routes."); });

  function say(text) {
    var note = document.getElementById("route-map-note");
    if (note) { note.textContent = text; }
  }

  function tip(route, stop) {
    var box = document.createElement("div");
    [stop.place,
     (stop.kind === "DELIVERY" ? "delivery" : "pick-up") + " " + stop.sequence + " of vehicle " + route.vehicle,
     "arrives " + stop.arrival,
     "load " + stop.units.toLocaleString("en-US") + " units"].forEach(function (text, i) {
      var line = document.createElement(i === 0 ? "strong" : "div");
      line.textContent = text;
      box.appendChild(line);
    });
    return box;
  }

  function draw(data) {
    var map = L.map(box, { attributionControl: false, zoomSnap: 0.25 });
    var bounds = [];
    data.routes.forEach(function (route) {
      if (route.points.length > 1) {
        L.polyline(route.points, { color: route.colour, weight: 3, opacity: 0.75 }).addTo(map);
      }
      route.stops.forEach(function (stop) {
        var delivery = stop.kind === "DELIVERY";
        L.circleMarker([stop.lat, stop.lon], {
          radius: delivery ? 6 : 5, color: route.colour, weight: 2, fillColor: delivery ? "#ffffff" : route.colour,
          fillOpacity: 1
        }).bindTooltip(tip(route, stop), { direction: "auto", offset: [0, -6] }).addTo(map);
        bounds.push([stop.lat, stop.lon]);
      });
    });
    if (bounds.length) { map.fitBounds(bounds, { padding: [24, 24] }); } else { map.setView([0, 0], 2); }
    if (data.tiles) { basemap(map, data.tiles); }
  }

  // One tile first: a basemap only where this browser can reach the tile server.
  function basemap(map, tiles) {
    var probe = new Image();
    var done = false;
    var timer = setTimeout(function () { finish(false); }, 4000);
    function finish(ok) {
      if (done) { return; }
      done = true;
      clearTimeout(timer);
      if (!ok) {
        say("The tile server (" + tiles.origin + ") cannot be reached from this browser: the routes are drawn on a plain background.");
        return;
      }
      L.tileLayer(tiles.url, { maxZoom: 18, referrerPolicy: "strict-origin-when-cross-origin" }).addTo(map);
      L.control.attribution({ prefix: false }).addTo(map).addAttribution(
        tiles.attribution.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"));
    }
    probe.referrerPolicy = "strict-origin-when-cross-origin";
    probe.onload = function () { finish(true); };
    probe.onerror = function () { finish(false); };
    probe.src = tiles.probe;
  }
});
