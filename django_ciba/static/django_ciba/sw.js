/* django-ciba service worker: shows Web Push notifications of authentication requests and opens
 * the request's approval page when one is clicked. Served by Django at <prefix>/ciba/sw.js.
 *
 * The push message (decrypted by the browser) is JSON: {"title", "body", "url", "request_id"}.
 * It handles no fetch events, so it never changes how pages load.
 */
"use strict";

self.addEventListener("install", function () {
  self.skipWaiting();
});

self.addEventListener("activate", function (event) {
  event.waitUntil(self.clients.claim());
});

function approvalUrl(value) {
  // Same-origin links, and https links elsewhere; anything else (javascript:, data:) is ignored.
  if (typeof value !== "string" || !value) {
    return "";
  }
  try {
    var url = new URL(value, self.location.origin);
    if (url.origin === self.location.origin || url.protocol === "https:") {
      return url.href;
    }
  } catch (error) {
    // not a URL
  }
  return "";
}

self.addEventListener("push", function (event) {
  var message = {};
  try {
    message = event.data ? event.data.json() : {};
  } catch (error) {
    message = {};
  }
  var title = typeof message.title === "string" && message.title ? message.title : "Authentication request";
  var options = {
    body: typeof message.body === "string" ? message.body : "",
    // One notification per request: a repeated message replaces it instead of stacking up.
    tag: "ciba-" + String(message.request_id || ""),
    renotify: false,
    requireInteraction: true,
    data: { url: approvalUrl(message.url) },
  };
  event.waitUntil(self.registration.showNotification(title, options));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var target = (event.notification.data && event.notification.data.url) || "";
  if (!target) {
    return;
  }
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (windows) {
      for (var i = 0; i < windows.length; i++) {
        if (windows[i].url === target && "focus" in windows[i]) {
          return windows[i].focus();
        }
      }
      return self.clients.openWindow(target);
    })
  );
});
