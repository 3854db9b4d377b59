/* Marquee browser tracker: first-party behaviour collection (no dependencies, nothing loaded
 * from elsewhere). Embed it with a publishable key:
 *
 *   <script src="https://<storefront host>/sdk/marquee.js" data-key="mq_pk_..." defer></script>
 *
 * Optional attributes: data-endpoint (where /v1/events is; default: where this script came
 * from), data-user-id (the signed-in user; empty: nobody is signed in), data-anonymous-id (an anonymous id the page
 * already uses), data-item (the item this page is about), data-page-view="false" (the page
 * view is recorded elsewhere, e.g. by the server: no automatic view event).
 *
 * It records a page view on load, a click on every element marked data-mq-item (with the
 * data-mq-recommendation of the element or an ancestor, so clicks are credited to the answer
 * that showed the item), and the seconds the page was visible (a dwell event) when it is
 * hidden. Events are batched and sent with navigator.sendBeacon (fetch with keepalive where
 * beacons are missing) as text/plain, so no preflight is needed.
 *
 *   marquee.track(kind, itemId, {value, context, recommendationId})  any event kind
 *   marquee.addToCart(itemId)       the same as track("add_to_cart", itemId)
 *   marquee.identify(userId)        this visitor is the user: their anonymous events count
 *                                   for the user from now on (in training and fold-in)
 *   marquee.reset()                 sign-out: forget the user, start a new anonymous id
 *   marquee.recommendations({k})    the anonymous session's answer (a Promise of the JSON)
 *   marquee.anonymousId()           the anonymous id
 *   marquee.flush()                 send what is queued now
 */
(function () {
  "use strict";
  if (window.marquee && window.marquee.version) {
    return;
  }
  var script = document.currentScript;
  var attr = function (name) {
    return script ? script.getAttribute(name) : null;
  };
  var key = attr("data-key") || "";
  var endpoint = (attr("data-endpoint") || (script && script.src ? new URL(script.src).origin : location.origin)).replace(/\/$/, "");
  var ANON = "mq_anonymous_id";
  var USER = "mq_user_id";
  var MAX_BATCH = 200;
  var FLUSH_MS = 2000;
  var memory = {};
  var storage = {
    get: function (k) {
      try {
        return window.localStorage.getItem(k);
      } catch (e) {
        return memory[k] || null;
      }
    },
    set: function (k, v) {
      try {
        if (v === null) window.localStorage.removeItem(k);
        else window.localStorage.setItem(k, v);
      } catch (e) {
        memory[k] = v;
      }
    }
  };
  var random = function () {
    var bytes = new Uint8Array(12);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    var out = "";
    for (var i = 0; i < bytes.length; i++) out += (bytes[i] + 256).toString(16).slice(1);
    return out;
  };
  var given = attr("data-anonymous-id");
  if (given) storage.set(ANON, given);
  var anonymous = storage.get(ANON);
  if (!anonymous) {
    anonymous = "anon-" + random();
    storage.set(ANON, anonymous);
  }
  var user = storage.get(USER);
  if (attr("data-user-id") !== null) {
    user = attr("data-user-id") || null;
    storage.set(USER, user);
  }
  var pageItem = attr("data-item");
  if (!pageItem) {
    var meta = document.querySelector('meta[name="mq-item"]');
    pageItem = meta ? meta.getAttribute("content") : null;
  }
  var queue = [];
  var timer = null;

  var send = function (events) {
    if (!key || !events.length) return;
    var url = endpoint + "/v1/events?key=" + encodeURIComponent(key);
    var body = JSON.stringify({ events: events });
    var sent = false;
    if (navigator.sendBeacon) {
      try {
        sent = navigator.sendBeacon(url, new Blob([body], { type: "text/plain" }));
      } catch (e) {
        sent = false;
      }
    }
    if (!sent && window.fetch) {
      window.fetch(url, { method: "POST", body: body, keepalive: true, mode: "cors", headers: { "Content-Type": "text/plain" } })["catch"](function () {});
    }
  };
  var flush = function () {
    if (timer) {
      clearTimeout(timer);
      timer = null;
    }
    while (queue.length) send(queue.splice(0, MAX_BATCH));
  };
  var track = function (kind, item, options) {
    options = options || {};
    var event = {
      event_id: "mqjs-" + random(),
      kind: kind,
      session_id: anonymous,
      timestamp: new Date().toISOString(),
      context: options.context || { url: location.pathname + location.search }
    };
    if (user) event.user_id = user;
    if (item) event.item_id = String(item);
    if (options.value !== undefined && options.value !== null) event.value = options.value;
    if (options.recommendationId) event.recommendation_id = options.recommendationId;
    if (options.at) event.timestamp = new Date(options.at).toISOString();
    queue.push(event);
    if (options.now || queue.length >= MAX_BATCH) flush();
    else if (!timer) timer = setTimeout(flush, FLUSH_MS);
    return event.event_id;
  };

  // Clicks on marked items: sent at once, as a click usually leaves the page.
  document.addEventListener(
    "click",
    function (e) {
      var el = e.target && e.target.closest ? e.target.closest("[data-mq-item]") : null;
      if (!el) return;
      var holder = el.closest("[data-mq-recommendation]");
      track("click", el.getAttribute("data-mq-item"), {
        recommendationId: el.getAttribute("data-mq-recommendation") || (holder ? holder.getAttribute("data-mq-recommendation") : null),
        now: true
      });
    },
    true
  );

  // Dwell: the seconds the page was visible, sent when it is hidden or left, timed when the
  // visible stretch began (so it sorts before what the visitor did next).
  var visibleSince = document.visibilityState === "hidden" ? null : Date.now();
  var reportDwell = function () {
    if (visibleSince !== null) {
      var seconds = Math.min(86400, Math.round((Date.now() - visibleSince) / 100) / 10);
      if (seconds > 0) track("dwell", pageItem, { value: seconds, at: visibleSince });
      visibleSince = null;
    }
    flush();
  };
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") reportDwell();
    else visibleSince = Date.now();
  });
  window.addEventListener("pagehide", reportDwell);

  window.marquee = {
    version: 1,
    track: track,
    addToCart: function (item, options) {
      return track("add_to_cart", item, options);
    },
    identify: function (userId) {
      user = String(userId);
      storage.set(USER, user);
    },
    reset: function () {
      flush();
      user = null;
      storage.set(USER, null);
      anonymous = "anon-" + random();
      storage.set(ANON, anonymous);
    },
    anonymousId: function () {
      return anonymous;
    },
    flush: flush,
    recommendations: function (options) {
      var k = (options && options.k) || 10;
      var url = endpoint + "/v1/recommendations?session_id=" + encodeURIComponent(anonymous) + "&k=" + k + "&key=" + encodeURIComponent(key);
      return window.fetch(url, { mode: "cors" }).then(function (r) {
        return r.json();
      });
    }
  };
  if (attr("data-page-view") !== "false") track("view", pageItem, { context: { url: location.pathname + location.search, referrer: document.referrer || undefined, title: document.title } });
})();
