"""What the verbs do below the API: fit's pipeline, compare, advise, audit, auto, budgets."""
