/* django-ciba: "Notify me on this device" on the approval pages.
 *
 * Reads its configuration from the element rendered by django_ciba/pages/_webpush.html
 * ([data-ciba-webpush]): VAPID public key, service worker URL, subscribe/unsubscribe URLs, CSRF
 * token and texts. Without JavaScript, or in a browser without Web Push, the buttons stay hidden
 * and the page works as before.
 */
(function () {
  "use strict";

  var root = document.querySelector("[data-ciba-webpush]");
  if (!root || !("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
    return;
  }
  var config = root.dataset;
  var subscribeButton = root.querySelector("[data-ciba-webpush-subscribe]");
  var unsubscribeButton = root.querySelector("[data-ciba-webpush-unsubscribe]");
  var statusLine = root.querySelector("[data-ciba-webpush-status]");

  function keyBytes(base64url) {
    var base64 = (base64url + "===".slice((base64url.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    var raw = window.atob(base64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) {
      bytes[i] = raw.charCodeAt(i);
    }
    return bytes;
  }

  function sameKey(subscription, expected) {
    var key = subscription.options && subscription.options.applicationServerKey;
    if (!key) {
      return true; // the browser does not tell: assume it is ours
    }
    var actual = new Uint8Array(key);
    if (actual.length !== expected.length) {
      return false;
    }
    for (var i = 0; i < actual.length; i++) {
      if (actual[i] !== expected[i]) {
        return false;
      }
    }
    return true;
  }

  function csrfToken() {
    if (config.csrfToken) {
      return config.csrfToken;
    }
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function send(url, method, body) {
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body),
    }).then(function (response) {
      if (!response.ok) {
        throw new Error("HTTP " + response.status);
      }
      return response;
    });
  }

  function show(state) {
    subscribeButton.hidden = state !== "off";
    unsubscribeButton.hidden = state !== "on";
    var text = { on: config.textOn, blocked: config.textBlocked, error: config.textError }[state] || "";
    statusLine.textContent = text;
    statusLine.hidden = !text;
  }

  // The worker's default scope is its own directory; the pages need not be controlled by it.
  function registration() {
    return navigator.serviceWorker.register(config.serviceWorkerUrl).then(function (reg) {
      var worker = reg.installing || reg.waiting;
      if (reg.active || !worker) {
        return reg;
      }
      return new Promise(function (resolve) {
        worker.addEventListener("statechange", function () {
          if (worker.state === "activated") {
            resolve(reg);
          }
        });
      });
    });
  }

  var serverKey = keyBytes(config.publicKey);

  function store(subscription) {
    return send(config.subscribeUrl, "POST", subscription.toJSON());
  }

  function subscribe() {
    subscribeButton.disabled = true;
    Notification.requestPermission()
      .then(function (permission) {
        if (permission !== "granted") {
          throw new Error(permission);
        }
        return registration();
      })
      .then(function (reg) {
        return reg.pushManager.getSubscription().then(function (existing) {
          // A subscription made with another key (before a key rotation) must go first.
          var stale = existing && !sameKey(existing, serverKey) ? existing.unsubscribe() : null;
          return Promise.resolve(stale).then(function () {
            return reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: serverKey });
          });
        });
      })
      .then(store)
      .then(function () {
        show("on");
      })
      .catch(function () {
        show(Notification.permission === "denied" ? "blocked" : "error");
        if (Notification.permission !== "denied") {
          subscribeButton.hidden = false;
        }
      })
      .then(function () {
        subscribeButton.disabled = false;
      });
  }

  function unsubscribe() {
    unsubscribeButton.disabled = true;
    navigator.serviceWorker
      .getRegistration(config.serviceWorkerUrl)
      .then(function (reg) {
        return reg ? reg.pushManager.getSubscription() : null;
      })
      .then(function (subscription) {
        if (!subscription) {
          return null;
        }
        return send(config.unsubscribeUrl, "POST", { endpoint: subscription.endpoint }).then(function () {
          return subscription.unsubscribe();
        });
      })
      .then(function () {
        show("off");
      })
      .catch(function () {
        show("error");
        unsubscribeButton.hidden = false;
      })
      .then(function () {
        unsubscribeButton.disabled = false;
      });
  }

  subscribeButton.addEventListener("click", subscribe);
  unsubscribeButton.addEventListener("click", unsubscribe);

  if (Notification.permission === "denied") {
    show("blocked");
    return;
  }
  // On load, nothing is registered before the user asks: look up the worker's registration, if
  // any (its scope, the worker's directory, matches the worker's own URL). An existing
  // subscription of this browser is stored again for the signed-in user (the server may have
  // pruned it); one made with another key (after a VAPID key rotation) is replaced.
  navigator.serviceWorker
    .getRegistration(config.serviceWorkerUrl)
    .then(function (reg) {
      if (!reg) {
        show("off");
        return null;
      }
      return reg.pushManager.getSubscription().then(function (subscription) {
        if (!subscription || Notification.permission !== "granted") {
          show("off");
          return null;
        }
        if (!sameKey(subscription, serverKey)) {
          return subscription
            .unsubscribe()
            .then(function () {
              return reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: serverKey });
            })
            .then(store)
            .then(function () {
              show("on");
            });
        }
        return store(subscription).then(function () {
          show("on");
        });
      });
    })
    .catch(function () {
      show("off");
    });
})();
