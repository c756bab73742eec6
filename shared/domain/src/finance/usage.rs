//! The AWS requests and capacity one message's pipeline spent: measured as each function runs
//! (DynamoDB's reported consumed capacity, every SQS and S3 request it made, its own duration and
//! memory) and carried along the queues to the function that writes the message's cost.
//!
//! Fractional quantities (a Lambda invocation that handled a batch of ten records, 0.5 read units)
//! are kept in thousandths so that everything stays an integer.

use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

use super::money::{round_picos, Micros};
use super::ratecard::AwsPrices;
use super::CostLine;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Usage {
    /// Lambda invocations, in thousandths (a batch of n records shares one invocation).
    pub lambda_requests_milli: u64,
    /// Lambda compute: configured memory in MB × billed milliseconds.
    pub lambda_mb_ms: u64,
    /// SQS API requests (sends, and the receive/delete the event source mapping spent), thousandths.
    pub sqs_requests_milli: u64,
    /// DynamoDB read and write request units as DynamoDB reported them, in thousandths.
    pub dynamodb_read_milli: u64,
    pub dynamodb_write_milli: u64,
    /// API Gateway HTTP API requests.
    pub apigw_requests: u64,
    /// API Gateway WebSocket messages.
    pub websocket_messages: u64,
    pub sfn_transitions: u64,
    pub ses_messages: u64,
    pub s3_put_requests: u64,
    pub s3_get_requests: u64,
}

impl Usage {
    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }

    /// One Lambda invocation's share for one record of a batch of `batch` records, over `elapsed_ms`.
    pub fn lambda(memory_mb: u64, elapsed_ms: u64, batch: u64) -> Usage {
        let batch = batch.max(1);
        Usage {
            lambda_requests_milli: 1000 / batch,
            // Lambda bills whole milliseconds, at least one.
            lambda_mb_ms: memory_mb * elapsed_ms.max(1),
            ..Usage::default()
        }
    }

    /// What this usage costs at `prices`: one line, summed exactly and rounded once (each AWS
    /// component alone is a fraction of a micro-unit).
    pub fn cost(&self, prices: &AwsPrices) -> CostLine {
        let milli = |p: super::UnitPrice, q: u64| p.times(q) / 1000;
        let picos = milli(prices.lambda_request, self.lambda_requests_milli)
            + prices.lambda_gb_second.times(self.lambda_mb_ms) / (1024 * 1000)
            + milli(prices.sqs_request, self.sqs_requests_milli)
            + milli(prices.dynamodb_read_unit, self.dynamodb_read_milli)
            + milli(prices.dynamodb_write_unit, self.dynamodb_write_milli)
            + prices.apigw_http_request.times(self.apigw_requests)
            + prices.websocket_message.times(self.websocket_messages)
            + prices.sfn_transition.times(self.sfn_transitions)
            + prices.ses_message.times(self.ses_messages)
            + prices.s3_put_request.times(self.s3_put_requests)
            + prices.s3_get_request.times(self.s3_get_requests);
        CostLine { item: "aws".into(), quantity: 1, unit_price: None, amount_micros: round_picos(picos) }
    }

    pub fn cost_micros(&self, prices: &AwsPrices) -> Micros {
        self.cost(prices).amount_micros
    }
}

impl Add for Usage {
    type Output = Usage;
    fn add(self, o: Usage) -> Usage {
        Usage {
            lambda_requests_milli: self.lambda_requests_milli + o.lambda_requests_milli,
            lambda_mb_ms: self.lambda_mb_ms + o.lambda_mb_ms,
            sqs_requests_milli: self.sqs_requests_milli + o.sqs_requests_milli,
            dynamodb_read_milli: self.dynamodb_read_milli + o.dynamodb_read_milli,
            dynamodb_write_milli: self.dynamodb_write_milli + o.dynamodb_write_milli,
            apigw_requests: self.apigw_requests + o.apigw_requests,
            websocket_messages: self.websocket_messages + o.websocket_messages,
            sfn_transitions: self.sfn_transitions + o.sfn_transitions,
            ses_messages: self.ses_messages + o.ses_messages,
            s3_put_requests: self.s3_put_requests + o.s3_put_requests,
            s3_get_requests: self.s3_get_requests + o.s3_get_requests,
        }
    }
}

impl Usage {
    /// What was spent after `earlier` (a snapshot of the same meter), field by field.
    pub fn since(self, earlier: Usage) -> Usage {
        Usage {
            lambda_requests_milli: self.lambda_requests_milli.saturating_sub(earlier.lambda_requests_milli),
            lambda_mb_ms: self.lambda_mb_ms.saturating_sub(earlier.lambda_mb_ms),
            sqs_requests_milli: self.sqs_requests_milli.saturating_sub(earlier.sqs_requests_milli),
            dynamodb_read_milli: self.dynamodb_read_milli.saturating_sub(earlier.dynamodb_read_milli),
            dynamodb_write_milli: self.dynamodb_write_milli.saturating_sub(earlier.dynamodb_write_milli),
            apigw_requests: self.apigw_requests.saturating_sub(earlier.apigw_requests),
            websocket_messages: self.websocket_messages.saturating_sub(earlier.websocket_messages),
            sfn_transitions: self.sfn_transitions.saturating_sub(earlier.sfn_transitions),
            ses_messages: self.ses_messages.saturating_sub(earlier.ses_messages),
            s3_put_requests: self.s3_put_requests.saturating_sub(earlier.s3_put_requests),
            s3_get_requests: self.s3_get_requests.saturating_sub(earlier.s3_get_requests),
        }
    }
}

impl AddAssign for Usage {
    fn add_assign(&mut self, o: Usage) {
        *self = *self + o;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finance::RateCard;

    #[test]
    fn a_typical_inbound_sms_costs_a_few_hundred_thousandths_of_a_cent() {
        let card = RateCard::builtin();
        let u = Usage::lambda(128, 40, 1)
            + Usage::lambda(128, 60, 1)
            + Usage {
                apigw_requests: 1,
                sqs_requests_milli: 4000,
                dynamodb_read_milli: 3000,
                dynamodb_write_milli: 12000,
                ..Usage::default()
            };
        // 2 × $0.20/M + 100 ms × 128 MB × $0.0000133334/GB-s + 4 × $0.50/M + 3 × $0.125/M
        // + 12 × $0.625/M + $1.00/M = 0.4 + 0.1667 + 2 + 0.375 + 7.5 + 1 = 11.44 micros.
        assert_eq!(u.cost_micros(&card.aws), 11);
    }

    #[test]
    fn batch_shares_add_up_to_one_invocation() {
        let per = Usage::lambda(128, 10, 4);
        assert_eq!(per.lambda_requests_milli * 4, 1000);
        assert!(Usage::default().is_empty());
    }
}
