"""The service document and the ``$metadata`` (EDMX/CSDL) document of a form's feed.

Central's layout, so that clients built against Central read ours: the
``org.opendatakit.submission`` schema with the ``metadata`` complex type (``__system``) and
its enums, then the form's schema (``org.opendatakit.user.<xmlFormId>``) with one entity type
per table, one complex type per group and an entity container named after the form. Built
with lxml, so every name and value is escaped.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from server.odata.model import ROOT_TABLE, Node, ODataModel, Table, identifier, path_parts

EDMX_NS = "http://docs.oasis-open.org/odata/ns/edmx"
EDM_NS = "http://docs.oasis-open.org/odata/ns/edm"
SUBMISSION_NAMESPACE = "org.opendatakit.submission"

SYSTEM_PROPERTIES: tuple[tuple[str, str], ...] = (
    ("submissionDate", "Edm.DateTimeOffset"),
    ("updatedAt", "Edm.DateTimeOffset"),
    ("deletedAt", "Edm.DateTimeOffset"),
    ("submitterId", "Edm.String"),
    ("submitterName", "Edm.String"),
    ("attachmentsPresent", "Edm.Int64"),
    ("attachmentsExpected", "Edm.Int64"),
    ("status", f"{SUBMISSION_NAMESPACE}.Status"),
    ("reviewState", f"{SUBMISSION_NAMESPACE}.ReviewState"),
    ("deviceId", "Edm.String"),
    ("edits", "Edm.Int64"),
    ("formVersion", "Edm.String"),
)
STATUSES = ("notDecrypted", "missingEncryptedFormData")
REVIEW_STATES = ("hasIssues", "edited", "rejected", "approved")
"""``received`` is ``null`` on the wire, as in Central."""

EDM_TYPES = {
    "int": "Edm.Int64",
    "decimal": "Edm.Decimal",
    "boolean": "Edm.Boolean",
    "geopoint": "Edm.GeographyPoint",
    "geotrace": "Edm.GeographyLineString",
    "geoshape": "Edm.GeographyPolygon",
    "date": "Edm.Date",
    "dateTime": "Edm.DateTimeOffset",
}
"""Every other type (text, selects, time, files…) is ``Edm.String``."""

_CAPABILITIES = "Org.OData.Capabilities.V1"


def service_document(model: ODataModel, metadata_url: str) -> dict[str, Any]:
    return {
        "@odata.context": metadata_url,
        "value": [{"name": name, "kind": "EntitySet", "url": name} for name in model.tables],
    }


def edm_type(node: Node) -> str:
    return EDM_TYPES.get(node.field.type, "Edm.String")


def metadata_document(model: ODataModel) -> bytes:
    edmx = etree.Element(f"{{{EDMX_NS}}}Edmx", nsmap={"edmx": EDMX_NS}, Version="4.0")
    services = etree.SubElement(edmx, f"{{{EDMX_NS}}}DataServices")
    _system_schema(services)
    schema = etree.SubElement(services, f"{{{EDM_NS}}}Schema", nsmap={None: EDM_NS},
                              Namespace=model.namespace)
    for table in model.tables.values():
        _entity_type(schema, model, table)
    for table in model.tables.values():
        for node in table.walk():
            if node.is_group:
                complex_type = _el(schema, "ComplexType", Name=_type_name(node))
                _properties(complex_type, model, node.children)
    container = _el(schema, "EntityContainer", Name=identifier(model.xml_form_id))
    for table in model.tables.values():
        entity_set = _el(container, "EntitySet", Name=table.name,
                         EntityType=f"{model.namespace}.{table.name}")
        if table.is_root:
            _annotations(entity_set, table)
    return etree.tostring(edmx, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _el(parent: etree._Element, tag: str, text: str | None = None,
        **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, f"{{{EDM_NS}}}{tag}", attrs)
    if text is not None:
        el.text = text
    return el


def _system_schema(services: etree._Element) -> None:
    schema = etree.SubElement(services, f"{{{EDM_NS}}}Schema", nsmap={None: EDM_NS},
                              Namespace=SUBMISSION_NAMESPACE)
    metadata = _el(schema, "ComplexType", Name="metadata")
    for name, type_ in SYSTEM_PROPERTIES:
        _el(metadata, "Property", Name=name, Type=type_)
    for enum, members in (("Status", STATUSES), ("ReviewState", REVIEW_STATES)):
        enum_type = _el(schema, "EnumType", Name=enum)
        for member in members:
            _el(enum_type, "Member", Name=member)


def _type_name(node: Node) -> str:
    """Central names complex types by the group's whole path, dotted."""
    return ".".join(path_parts(node.path))


def _entity_type(schema: etree._Element, model: ODataModel, table: Table) -> None:
    entity = _el(schema, "EntityType", Name=table.name)
    _el(_el(entity, "Key"), "PropertyRef", Name="__id")
    _el(entity, "Property", Name="__id", Type="Edm.String")
    if table.is_root:
        _el(entity, "Property", Name="__system", Type=f"{SUBMISSION_NAMESPACE}.metadata")
    else:
        _el(entity, "Property", Name=table.parent_id_name or "", Type="Edm.String")
    _properties(entity, model, table.nodes)


def _properties(parent: etree._Element, model: ODataModel, nodes: list[Node]) -> None:
    for node in nodes:
        if node.is_repeat:
            target = f"{model.namespace}.{ROOT_TABLE}.{_type_name(node)}"
            _el(parent, "NavigationProperty", Name=node.name, Type=f"Collection({target})")
        elif node.is_group:
            _el(parent, "Property", Name=node.name, Type=f"{model.namespace}.{_type_name(node)}")
        else:
            _el(parent, "Property", Name=node.name, Type=edm_type(node))


def _annotations(entity_set: etree._Element, table: Table) -> None:
    """What the feed supports, as Central declares it (paging, counting, filtering on
    ``__system`` only; no batches)."""
    def annotation(term: str, **attrs: str) -> etree._Element:
        return _el(entity_set, "Annotation", Term=f"{_CAPABILITIES}.{term}", **attrs)

    def record(el: etree._Element, **values: str) -> etree._Element:
        rec = _el(el, "Record")
        for prop, value in values.items():
            _el(rec, "PropertyValue", Property=prop, Bool=value)
        return rec

    annotation("ConformanceLevel", EnumMember=f"{_CAPABILITIES}.ConformanceLevelType/Minimal")
    annotation("BatchSupported", Bool="false")
    record(annotation("CountRestrictions"), Countable="true")
    filters = record(annotation("FilterRestrictions"), Filterable="true",
                     RequiresFilter="false")
    paths = _el(_el(filters, "PropertyValue", Property="NonFilterableProperties"),
                "Collection")
    for node in table.nodes:
        _el(paths, "PropertyPath", node.name)
    record(annotation("SortRestrictions"), Sortable="true")
    record(annotation("ExpandRestrictions"), Expandable="true")
