terraform {
  # 1.5: import blocks and check-friendly validation; terraform_data (1.4) is built in.
  required_version = ">= 1.5"

  # Each provider is pinned to the release line whose schema terraform/schema/provider-schemas.json
  # holds (scripts/terraform-schema.js; test/terraform/terraform.test.ts checks every block against it). Widen
  # a pin only together with a regenerated extract.
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.50"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.7"
    }
    external = {
      source  = "hashicorp/external"
      version = "~> 2.3"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
    time = {
      source  = "hashicorp/time"
      version = "~> 0.13"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
