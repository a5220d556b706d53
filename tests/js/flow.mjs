// The main flows through the official JavaScript client, as a Node backend would call us.
// Usage: node flow.mjs <baseUrl> <apiKey> <suffix>. Prints one JSON object with what the client returned;
// tests/test_js_client.py asserts on it (the expected numbers are computed there).
import { OpenMeter, isHTTPError } from '@openmeter/sdk'
import { OpenMeter as PortalClient } from '@openmeter/sdk/portal'

const [baseUrl, apiKey, suffix] = process.argv.slice(2)
const om = new OpenMeter({ baseUrl, apiKey })
const out = {}

const hour = (h) => {
  const t = new Date()
  t.setUTCMinutes(0, 0, 0)
  return new Date(t.getTime() + h * 3600 * 1000)
}
const meterSlug = `tokens_${suffix}`
const eventType = `prompt-${suffix}`
const subject = `js-user-${suffix}`

// Metering: a meter, a batch with a repeated event (stored once), a query by hour and model.
await om.meters.create({
  slug: meterSlug,
  aggregation: 'SUM',
  eventType,
  valueProperty: '$.tokens',
  groupBy: { model: '$.model' },
})
const event = (id, at, tokens, model) => ({ id: `${suffix}-${id}`, type: eventType, subject, time: at, data: { tokens, model } })
await om.events.ingest([
  event(1, hour(-3), 100, 'gpt-4'),
  event(2, new Date(hour(-3).getTime() + 10 * 60 * 1000), 50, 'gpt-3'),
  event(3, hour(-2), 25, 'gpt-4'),
])
await om.events.ingest(event(1, hour(-3), 100, 'gpt-4')) // the SDK sends a one-element batch; a duplicate
const query = await om.meters.query(meterSlug, {
  from: hour(-4),
  to: hour(0),
  windowSize: 'HOUR',
  groupBy: ['model'],
  subject: [subject],
})
out.query = query.data.map((r) => ({
  windowStart: r.windowStart.toISOString(),
  model: r.groupBy.model,
  subject: r.subject,
  value: r.value,
}))
const events = await om.events.list({ subject, from: hour(-5) })
out.eventIds = events.map((e) => e.event.id).sort()

// A bad request: the client reads our problem+json (only with that exact content type).
try {
  await om.meters.create({ slug: 'Not A Slug', aggregation: 'SUM', eventType: 'x', valueProperty: '$.v' })
  out.badRequest = 'accepted'
} catch (err) {
  out.badRequest = isHTTPError(err) ? { status: err.status, detail: err.getField('detail') } : String(err)
}

// Customers, a metered feature and an entitlement with an issued grant.
const customer = await om.customers.create({
  key: `js-customer-${suffix}`,
  name: 'JS Customer',
  currency: 'USD',
  usageAttribution: { subjectKeys: [subject] },
})
out.customerKey = customer.key
const featureKey = `js_tokens_${suffix}`
await om.features.create({ key: featureKey, name: 'Tokens', meterSlug })
await om.customers.entitlements.create(customer.id, {
  type: 'metered',
  featureKey,
  usagePeriod: { interval: 'MONTH', anchor: hour(-4) },
  measureUsageFrom: hour(-4),
  issue: { amount: 1000 },
})
const value = await om.customers.entitlements.value(customer.key, featureKey)
out.value = { hasAccess: value.hasAccess, balance: value.balance, usage: value.usage, overage: value.overage }
const access = await om.customers.getAccess(customer.key)
out.access = Object.fromEntries(Object.entries(access.entitlements).map(([k, v]) => [k, v.hasAccess]))

// Catalog and subscriptions: a published plan with a flat monthly fee, the customer subscribed to it.
const plan = await om.plans.create({
  key: `js_plan_${suffix}`,
  name: 'JS Plan',
  currency: 'USD',
  billingCadence: 'P1M',
  phases: [
    {
      key: 'default',
      name: 'Default',
      duration: null,
      rateCards: [
        {
          type: 'flat_fee',
          key: 'platform',
          name: 'Platform fee',
          billingCadence: 'P1M',
          price: { type: 'flat', amount: '49.99', paymentTerm: 'in_advance' },
        },
      ],
    },
  ],
})
const published = await om.plans.publish(plan.id)
out.planStatus = published.status
const subscription = await om.subscriptions.create({ customerKey: customer.key, plan: { key: plan.key } })
out.subscriptionStatus = subscription.status
const subscriptions = await om.customers.listSubscriptions(customer.key)
out.subscriptionIds = subscriptions.items.map((s) => s.id)
out.subscriptionId = subscription.id

// The consumer portal: a token for the subject, then the portal client's query.
const token = await om.portal.create({ subject, allowedMeterSlugs: [meterSlug] })
const portal = new PortalClient({ baseUrl, portalToken: token.token })
const portalQuery = await portal.query(meterSlug, { from: hour(-4), to: hour(0) })
out.portalTotal = portalQuery.data.reduce((sum, r) => sum + r.value, 0)

// Metrics are text/plain OpenMetrics; the SDK needs parseAs: 'text' for them.
const metrics = await om.debug.getMetrics({ parseAs: 'text' })
out.metricsHasCounter = metrics.includes('openmeter_events_total')

console.log(JSON.stringify(out))
