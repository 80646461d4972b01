from apps.knowledge.selectors import knowledge_search

from .base import Tool, ToolContext, ToolError

MAX_PASSAGES = 8


def search(context: ToolContext, arguments: dict) -> dict:
    query = arguments.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ToolError("`query` is required: the question or words to look up")
    limit = arguments.get("limit", 4)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PASSAGES:
        raise ToolError(f"`limit` must be a whole number from 1 to {MAX_PASSAGES}")
    passages = [p.as_dict() for p in knowledge_search(agent_id=context.agent.pk, query=query[:500], limit=limit)]
    context.passages.extend(passages)
    if not passages:
        return {"passages": [], "note": "Nothing in the knowledge base matches; do not guess facts."}
    return {"passages": passages}


TOOL = Tool(
    name="knowledge.search",
    description=(
        "Search this business's knowledge base (FAQ, documents, web pages) and get the best passages with "
        "their source. Answer facts about the business only from what it returns."
    ),
    parameters={
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "The question or keywords to look up."},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_PASSAGES, "description": "Passages (default 4)."},
        },
        "required": ["query"],
        "additionalProperties": False,
    },
    func=search,
)
