//! The behaviour tests, one crate: each module is one behaviour of the gateway, tried
//! from outside (a real rmcp client, the gateway, a real upstream), named as a sentence.
//! One crate links the library and its dependencies once, not once per behaviour.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;
/// The conformance fixture (also served on its own by `cargo run --example conformance-fixture`).
#[path = "../conformance/fixture.rs"]
mod fixture;

mod a_carried_request_state_is_sealed_to_its_call;
mod a_full_disk_refuses_calls_and_recovers_by_itself;
mod a_kept_alive_connection_serves_every_call;
mod a_loaded_policy_holds_no_threads;
mod a_prompts_questions_are_decided_and_its_state_sealed;
mod a_request_sees_one_generation;
mod a_second_gateway_on_the_same_log_refuses_to_start;
mod a_syslog_server_is_a_witness;
mod an_upstream_without_a_namespace;
mod any_replica_serves_any_session;
mod approval_expiry_in_paused_time;
mod approval_parks_high_risk_calls;
mod approval_requests_survive_a_gateway_restart;
mod approval_rules_from_manifests_and_the_act_default;
mod approval_webhook_announces_new_requests;
mod approvals_api_decides_waiting_calls;
mod approvals_page_in_a_browser;
mod audit_failure_refuses_the_call;
mod audit_log_survives_kill_9;
mod audit_show_answers_an_auditors_question;
mod audit_verify_detects_any_edit;
mod both_protocol_eras_on_one_endpoint;
mod check_reports_every_problem;
mod cold_decisions_match_a_full_scan;
mod concurrent_approvals_execute_each_call_once;
mod conformance_suite_through_the_gateway;
mod credentials_never_reach_the_audit_log_or_the_logs;
mod documented_audit_fields_are_the_ones_written;
mod each_tier_is_forwarded_and_audited;
mod filesystem_server_through_the_gateway;
mod flows_follow_what_a_session_has_read;
mod http_callers_must_authenticate;
mod init_puts_a_clients_servers_behind_the_gateway;
mod inspector_cli_through_the_gateway;
mod intent_can_be_kept_out_of_the_audit_log;
mod invalid_arguments_are_refused;
mod just_in_time_grants;
mod malformed_json_rpc_gets_json_rpc_errors;
mod missing_intent_is_refused;
mod operating_docs_match_what_is_served;
mod path_and_url_rules_parse_what_they_check;
mod policy_cases;
mod policy_explain_says_why;
mod policy_refusals_are_audited_with_their_rule;
mod progress_and_cancellation_are_relayed;
mod prometheus_reads_back_what_the_gateway_did;
mod prompts_pass_through_with_policy;
mod protocol_revisions_meet_in_the_gateway;
mod python_sdk_client_through_the_gateway;
mod quarantined_tool_is_refused;
mod rate_limits_hold_back_a_flood;
mod readiness_follows_the_upstreams;
mod readme_approval_demo_works_end_to_end;
mod reload_by_signal_command_and_file_change;
mod reload_swaps_everything_or_nothing;
mod replicas_share_approvals_and_grants;
mod resource_subscriptions_are_relayed_by_policy;
mod resources_pass_through_with_policy;
mod runtime_threads_follow_the_setting;
mod serve_has_a_metrics_listener_and_json_logs;
mod server_requests_reach_only_their_caller;
mod shipped_files_are_valid;
mod signed_checkpoints_prove_the_log_to_whoever_holds_the_key;
mod stdio_serve_speaks_only_protocol;
mod store_engines_behave_alike;
mod streamable_http_clients_and_upstreams;
mod tasks_are_bound_to_the_caller_that_created_them;
mod tasks_are_in_every_record_and_keep_what_they_read;
mod the_principal_confirms_their_own_agents_calls;
mod third_party_servers_through_the_gateway;
mod tool_definition_drift_is_quarantined;
mod tool_owners_write_manifests_from_live_tools;
mod tools_list_shows_only_permitted_tools;
mod traces_reach_the_collector_the_upstream_and_the_audit;
mod unknown_and_unlisted_tools_are_refused;
mod upstream_failure_is_reported_and_recovered;
mod upstream_list_changed_refreshes_the_catalog;
mod upstream_logs_reach_only_clients_that_may_read_them;
mod upstream_protocol_violations_are_logged;
