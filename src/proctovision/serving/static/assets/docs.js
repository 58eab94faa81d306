// Starts Swagger UI on the service's own OpenAPI document (a file, so the page's policy allows no inline script).
window.ui = SwaggerUIBundle({ url: "openapi.json", dom_id: "#swagger-ui", deepLinking: true });
