# Names that two stacks in one project must not share. Every one follows var.name_prefix unless set
# explicitly; with the default prefix ("session") they are exactly the names of earlier releases,
# so an existing stack plans no replacement.
locals {
  kill_topic = var.kill_topic != "" ? var.kill_topic : "${var.name_prefix}-kill"
  # A ViUR app's kind is fixed (Session.kindName): in viur format the default is always viur-session,
  # and two stacks serving two apps in one project differ by namespace or database instead.
  kind = var.kind != "" ? var.kind : (var.session_format == "viur" || var.name_prefix == "session" ? "viur-session" : "${var.name_prefix}-session")

  # Cloud Logging metric names are project-wide: "session/answers", "staging/answers", ...
  metric_prefix = var.name_prefix
}
