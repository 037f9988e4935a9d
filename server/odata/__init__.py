"""OData v4, the way ODK Central serves it: pure code (no Flask, no database).

- ``model``: a form version's field schema as OData tables (``Submissions`` and one entity
  set per repeat), properties, complex types and navigation properties, with Central's names;
- ``edmx``: the service document and the ``$metadata`` EDMX;
- ``filter``: the ``$filter``/``$orderby`` parser (an AST; SQL is made in
  ``server.queries.odata``);
- ``options``: the query options and the resource path of a request, and opaque skiptokens;
- ``entities``: rows shaped into OData JSON entities (typed values, GeoJSON or WKT, groups,
  navigation links, Central's ``__id`` for repeat rows, ``__system``).
"""
