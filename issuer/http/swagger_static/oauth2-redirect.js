// Swagger UI's OAuth 2 redirect page, as a file (the upstream page has an inline script, which the
// docs' Content-Security-Policy refuses). It hands the authorization response to the Swagger UI
// window that opened the sign-in popup, which then exchanges the code (with its PKCE verifier).
"use strict";
(function () {
  var opener = window.opener;
  var oauth2 = opener && opener.swaggerUIRedirectOauth2;
  if (!oauth2) {
    document.getElementById("status").textContent =
      "This page completes a sign-in started from the API documentation; open /docs and use Authorize.";
    return;
  }
  var source = /code|token|error/.test(window.location.hash) ? window.location.hash : window.location.search;
  var params = new URLSearchParams(source.substring(1));
  var qp = {};
  params.forEach(function (value, key) {
    qp[key] = value;
  });
  var isValid = qp.state === oauth2.state;
  var flow = oauth2.auth.schema.get("flow");
  if ((flow === "accessCode" || flow === "authorizationCode") && !oauth2.auth.code) {
    if (!isValid) {
      oauth2.errCb({
        authId: oauth2.auth.name,
        source: "auth",
        level: "warning",
        message: "Authorization may be unsafe: the state returned differs from the state sent",
      });
    }
    if (qp.code) {
      delete oauth2.state;
      oauth2.auth.code = qp.code;
      oauth2.callback({ auth: oauth2.auth, redirectUrl: oauth2.redirectUrl });
    } else {
      var message = "[Authorization failed]: no authorization code received from the server";
      if (qp.error) {
        message = "[" + qp.error + "]: " + (qp.error_description || "no authorization code received") +
          (qp.error_uri ? " More info: " + qp.error_uri : "");
      }
      oauth2.errCb({ authId: oauth2.auth.name, source: "auth", level: "error", message: message });
    }
  } else {
    oauth2.callback({ auth: oauth2.auth, token: qp, isValid: isValid, redirectUrl: oauth2.redirectUrl });
  }
  window.close();
})();
