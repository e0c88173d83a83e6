"""One request pipeline for every endpoint: parse → admit → decide → execute → finish.

- ``context.RequestContext``: the request's state through the stages;
- ``admit``: parse the body with the endpoint's ingress, resolve the model, check the key's limits;
- ``decide``: sticky → rules → semantic → router → online;
- ``execute``: the one executor (plain, stream, cache hit, cascade), ``cascade`` its escalation;
- ``finish``: accounting, exactly once per request; ``sse``: the one "answer as SSE" writer.

``run.handle`` runs them for one request.
"""
