terraform {
  # 1.5: import blocks and check-friendly validation; nothing here needs a newer release.
  required_version = ">= 1.5"

  required_providers {
    google = {
      source = "hashicorp/google"
      # build_config.service_account, firestore_index.api_scope and firestore_database.deletion_policy
      # all exist from 6.0 on; 8.x may break resource schemas, so it has to be tried before it is allowed.
      version = ">= 6.0, < 8.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4, < 3.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
