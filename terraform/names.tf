# Names that two stacks in one project must not share. Every one follows var.name_prefix unless set
# explicitly; with the default prefix ("session") they are exactly the names of earlier releases,
# so an existing stack plans no replacement.
locals {
  kill_topic = var.kill_topic != "" ? var.kill_topic : "${var.name_prefix}-kill"
  kind       = var.kind != "" ? var.kind : (var.name_prefix == "session" ? "viur-session" : "${var.name_prefix}-session")

  # Cloud Logging metric names are project-wide: "session/answers", "staging/answers", ...
  metric_prefix = var.name_prefix
}
