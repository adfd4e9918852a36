// Starts Swagger UI on the issuer's /openapi.json. A file, not an inline script, so the page runs
// under `script-src 'self'`; its settings come from the data- attributes of #swagger-ui.
"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  var config = root.dataset;
  var ui = SwaggerUIBundle({
    url: config.openapiUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    oauth2RedirectUrl: config.oauth2RedirectUrl,
    // The issuer requires PKCE (S256) of every client; tokens stay in memory, not localStorage.
    persistAuthorization: false,
    validatorUrl: null,
  });
  var oauth = { usePkceWithAuthorizationCodeGrant: true, scopes: ["openid", "profile", "email"] };
  if (config.clientId) {
    oauth.clientId = config.clientId;
  }
  ui.initOAuth(oauth);
  window.ui = ui;
})();
