// Starts Swagger UI on keygate's own OpenAPI document. It is a file of its own because the page's
// Content-Security-Policy runs no inline script.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  // A token given to "Authorize" lives in this tab only, never in localStorage, where any later
  // script of the origin could read it.
  persistAuthorization: false,
  // Swagger UI would otherwise send the document to an online validator: nothing leaves.
  validatorUrl: "none",
  // Nothing in the address bar (?url=, ?configUrl=) may point the page at another document.
  queryConfigEnabled: false,
});
