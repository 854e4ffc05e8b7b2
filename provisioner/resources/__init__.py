"""Resource types: one module per type, registered in one table.

* ``base``: what a resource type is (``ResourceKind``), the type names
  (``ResourceType``), the apply order (``Phase``) and the helpers every type's
  API calls share.
* ``user``, ``workspace``, ``membership``: one module per type. Each says the
  type's identity, its wire shape (parse from API JSON, request bodies), its
  diff rules, the API calls that apply each action, and its one-line text.
* ``registry``: the table (``REGISTRY``) that lists the types, in the order
  the diff and the plan walk them.

The type modules import the vocabulary from ``provisioner.plan.change``,
which imports no resource type; ``provisioner.plan.model`` sits above the
registry (see ``docs/architecture.md``, "Adding a resource type").
"""
