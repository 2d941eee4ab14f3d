# Optional: sessionApi under a host of the site's own, so browsers send the session cookie to it.
# Off unless custom_domain is set. The certificate is issued once DNS for custom_domain points to
# the lb_ip_address output.

locals {
  lb_enabled = var.custom_domain != ""
}

resource "google_compute_region_network_endpoint_group" "api" {
  count = local.lb_enabled ? 1 : 0

  project               = var.project_id
  region                = var.region
  name                  = "${var.name_prefix}-api-neg"
  network_endpoint_type = "SERVERLESS"

  cloud_run {
    # A 2nd gen function runs as the Cloud Run service of the same name.
    service = google_cloudfunctions2_function.api.name
  }

  depends_on = [google_project_service.required]
}

resource "google_compute_backend_service" "api" {
  count = local.lb_enabled ? 1 : 0

  project               = var.project_id
  name                  = "${var.name_prefix}-api-backend"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  # Google's own serverless setup keeps the default; the hop to Cloud Run stays on Google's network
  # and Cloud Run serves it over TLS regardless.
  protocol = "HTTP"

  backend {
    group = google_compute_region_network_endpoint_group.api[0].id
  }
}

resource "google_compute_url_map" "api" {
  count = local.lb_enabled ? 1 : 0

  project         = var.project_id
  name            = "${var.name_prefix}-api"
  default_service = google_compute_backend_service.api[0].id
}

resource "google_compute_managed_ssl_certificate" "api" {
  count = local.lb_enabled ? 1 : 0

  project = var.project_id
  name    = "${var.name_prefix}-api-cert"

  managed {
    domains = [var.custom_domain]
  }

  depends_on = [google_project_service.required]
}

resource "google_compute_target_https_proxy" "api" {
  count = local.lb_enabled ? 1 : 0

  project          = var.project_id
  name             = "${var.name_prefix}-api-https"
  url_map          = google_compute_url_map.api[0].id
  ssl_certificates = [google_compute_managed_ssl_certificate.api[0].id]
}

resource "google_compute_global_address" "api" {
  count = local.lb_enabled ? 1 : 0

  project = var.project_id
  name    = "${var.name_prefix}-api-ip"

  depends_on = [google_project_service.required]
}

# HTTPS only: the session cookie is Secure, so plain HTTP would never carry it.
resource "google_compute_global_forwarding_rule" "api" {
  count = local.lb_enabled ? 1 : 0

  project               = var.project_id
  name                  = "${var.name_prefix}-api-https"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  target                = google_compute_target_https_proxy.api[0].id
  ip_address            = google_compute_global_address.api[0].id
  port_range            = "443"
}
