/* warren/warren.h: the umbrella header. Everything a service needs to publish and
 * consume events reliably:
 *
 *   REST handler -> DB transaction + outbox (outbox.h) -> relay (relay.h) -> exchange
 *   -> queue -> consumer (consumer.h: inbox, version guard, retries, DLQ) -> view
 */
#ifndef WARREN_WARREN_H
#define WARREN_WARREN_H

#include <warren/common.h>
#include <warren/error.h>
#include <warren/util.h>
#include <warren/log.h>
#include <warren/schema.h>
#include <warren/event.h>
#include <warren/db.h>
#include <warren/conn.h>
#include <warren/topology.h>
#include <warren/outbox.h>
#include <warren/relay.h>
#include <warren/consumer.h>
#include <warren/dlq.h>
#include <warren/metrics.h>
#include <warren/json.h>
#include <warren/http.h>
#include <warren/http_client.h>
#include <warren/service.h>
#include <warren/sync.h>

#endif
