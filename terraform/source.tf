# The source is the TypeScript package scripts/package-deploy.js assembles in build/deploy; Cloud
# Build compiles it with the package's `gcp-build` script. Terraform runs the packaging itself on
# every plan (and so on every apply), so what is uploaded is always the checkout's current code:
# there is no separate step to forget. It needs Node.js where Terraform runs.

locals {
  source_bucket = var.source_bucket_name != "" ? var.source_bucket_name : "${var.project_id}-${var.name_prefix}-source"
}

# The external program protocol: JSON on stdin, a JSON object of strings on stdout, a non-zero exit
# with the reason on stderr fails the plan.
data "external" "package" {
  program     = ["node", "scripts/package-deploy.js", "--terraform"]
  working_dir = "${path.module}/.."
}

data "archive_file" "source" {
  type        = "zip"
  source_dir  = data.external.package.result.source_dir
  output_path = "${path.module}/../build/session-functions.zip"
  # Fixed modes (timestamps are already zeroed by the provider) keep the hash a function of content alone.
  output_file_mode = "0644"
}

resource "google_storage_bucket" "source" {
  project  = var.project_id
  name     = local.source_bucket
  location = var.region
  labels   = var.labels

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Holds nothing but rebuildable archives; without this, destroy stops at a non-empty bucket.
  force_destroy = true

  depends_on = [google_project_service.required]
}

resource "google_storage_bucket_object" "source" {
  # The content hash in the name makes every code change a new object, which changes
  # build_config.source and so rebuilds and redeploys the functions; unchanged code deploys nothing.
  name         = "session-functions-${data.archive_file.source.output_sha256}.zip"
  bucket       = google_storage_bucket.source.name
  source       = data.archive_file.source.output_path
  content_type = "application/zip"
}
