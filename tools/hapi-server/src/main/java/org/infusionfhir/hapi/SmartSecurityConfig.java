package org.infusionfhir.hapi;

import ca.uhn.fhir.interceptor.api.Hook;
import ca.uhn.fhir.interceptor.api.Pointcut;
import ca.uhn.fhir.rest.server.RestfulServer;
import com.fasterxml.jackson.databind.ObjectMapper;
import jakarta.servlet.DispatcherType;
import jakarta.servlet.FilterChain;
import jakarta.servlet.ServletException;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import org.hl7.fhir.instance.model.api.IBaseConformance;
import org.hl7.fhir.r4.model.CapabilityStatement;
import org.hl7.fhir.r4.model.CodeableConcept;
import org.hl7.fhir.r4.model.Extension;
import org.hl7.fhir.r4.model.UriType;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.SmartInitializingSingleton;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.web.servlet.ServletRegistrationBean;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Profile;
import org.springframework.security.authorization.AuthorizationDecision;
import org.springframework.security.authorization.AuthorizationManager;
import org.springframework.security.config.annotation.web.builders.HttpSecurity;
import org.springframework.security.config.annotation.web.configuration.EnableWebSecurity;
import org.springframework.security.config.http.SessionCreationPolicy;
import org.springframework.security.core.Authentication;
import org.springframework.security.core.GrantedAuthority;
import org.springframework.security.core.context.SecurityContextHolder;
import org.springframework.security.oauth2.core.DelegatingOAuth2TokenValidator;
import org.springframework.security.oauth2.core.OAuth2TokenValidator;
import org.springframework.security.oauth2.jose.jws.SignatureAlgorithm;
import org.springframework.security.oauth2.jwt.Jwt;
import org.springframework.security.oauth2.jwt.JwtClaimNames;
import org.springframework.security.oauth2.jwt.JwtClaimValidator;
import org.springframework.security.oauth2.jwt.JwtDecoder;
import org.springframework.security.oauth2.jwt.JwtIssuerValidator;
import org.springframework.security.oauth2.jwt.JwtTimestampValidator;
import org.springframework.security.oauth2.jwt.NimbusJwtDecoder;
import org.springframework.security.oauth2.server.resource.authentication.JwtAuthenticationToken;
import org.springframework.security.oauth2.server.resource.web.authentication.BearerTokenAuthenticationFilter;
import org.springframework.security.web.SecurityFilterChain;
import org.springframework.security.web.access.intercept.RequestAuthorizationContext;
import org.springframework.security.web.util.matcher.RequestMatcher;
import org.springframework.web.filter.OncePerRequestFilter;

/**
 * Protected ("smart") mode, active only with the Spring profile {@code smart}
 * ({@code SPRING_PROFILES_ACTIVE=smart}): {@code /fhir/*} becomes an OAuth 2.0 resource server in the
 * manner of a SMART Backend Services FHIR server. Without the profile this class is not loaded and,
 * since {@link LocalHapiServerApplication} excludes Spring Boot's security auto-configurations, the
 * server has no security at all.
 *
 * <ul>
 *   <li>Every request under {@code /fhir/} needs {@code Authorization: Bearer <JWT>} signed by a key
 *       of the issuer's JWK Set, with {@code iss} = {@code hapi.auth.issuer}, {@code aud} containing
 *       {@code hapi.auth.audience}, unexpired, and at least one {@code system/...} scope: else 401
 *       (no, bad or expired token) or 403 ({@code insufficient_scope}).
 *   <li>Open: {@code GET /fhir/metadata} (with the SMART security extension added) and
 *       {@code GET /fhir/.well-known/smart-configuration} (the issuer's token endpoint etc.).
 *   <li>One log line per request (logger {@code org.infusionfhir.hapi.audit}) with the client id of
 *       the token ({@code azp}, else {@code client_id}), its scopes, the method, path and status.
 * </ul>
 */
@Configuration
@Profile("smart")
@EnableWebSecurity
public class SmartSecurityConfig {

	static final String METADATA = "/fhir/metadata";
	static final String SMART_CONFIGURATION = "/fhir/.well-known/smart-configuration";
	private static final Logger LOG = LoggerFactory.getLogger(SmartSecurityConfig.class);
	private static final Logger AUDIT = LoggerFactory.getLogger("org.infusionfhir.hapi.audit");

	private final String issuer;
	private final String audience;
	private final String jwksUri;
	private final String tokenEndpoint;
	private final List<String> scopesSupported;
	private final Duration clockSkew;

	public SmartSecurityConfig(
			@Value("${hapi.auth.issuer:}") String issuer,
			@Value("${hapi.auth.audience:}") String audience,
			@Value("${hapi.auth.jwks-uri:}") String jwksUri,
			@Value("${hapi.auth.token-endpoint:}") String tokenEndpoint,
			@Value("${hapi.auth.scopes-supported:}") List<String> scopesSupported,
			@Value("${hapi.auth.clock-skew-seconds:5}") long clockSkewSeconds) {
		if (issuer.isBlank() || audience.isBlank()) {
			throw new IllegalStateException(
					"the Spring profile 'smart' needs HAPI_AUTH_ISSUER (the token issuer, e.g."
							+ " http://localhost:8180/realms/infusion) and HAPI_AUTH_AUDIENCE");
		}
		this.issuer = issuer;
		this.audience = audience;
		// Keycloak's endpoints unless told otherwise.
		this.jwksUri = jwksUri.isBlank() ? issuer + "/protocol/openid-connect/certs" : jwksUri;
		this.tokenEndpoint = tokenEndpoint.isBlank() ? issuer + "/protocol/openid-connect/token" : tokenEndpoint;
		this.scopesSupported = scopesSupported.stream().filter(s -> !s.isBlank()).toList();
		// Spring's default allows 60 s past `exp`; a short skew lets tests see a 60 s token expire.
		this.clockSkew = Duration.ofSeconds(clockSkewSeconds);
		LOG.info(
				"SMART protected mode: /fhir/* needs a JWT of issuer {} with aud {} and a system/ scope"
						+ " (clock skew {} s); keys from {}; token endpoint {}",
				this.issuer,
				this.audience,
				clockSkewSeconds,
				this.jwksUri,
				this.tokenEndpoint);
	}

	/** JWTs signed by the issuer's keys (fetched lazily, cached), with the right iss, aud, exp and nbf. */
	@Bean
	public JwtDecoder smartJwtDecoder() {
		NimbusJwtDecoder decoder = NimbusJwtDecoder.withJwkSetUri(jwksUri)
				.jwsAlgorithms(algs -> algs.addAll(Set.of(
						SignatureAlgorithm.RS256, SignatureAlgorithm.RS384, SignatureAlgorithm.RS512,
						SignatureAlgorithm.PS256, SignatureAlgorithm.ES256, SignatureAlgorithm.ES384)))
				.build();
		OAuth2TokenValidator<Jwt> audienceValidator =
				new JwtClaimValidator<List<String>>(JwtClaimNames.AUD, aud -> aud != null && aud.contains(audience));
		decoder.setJwtValidator(new DelegatingOAuth2TokenValidator<>(
				new JwtTimestampValidator(clockSkew), new JwtIssuerValidator(issuer), audienceValidator));
		return decoder;
	}

	@Bean
	public SecurityFilterChain smartFilterChain(HttpSecurity http, JwtDecoder smartJwtDecoder) throws Exception {
		RequestMatcher open = request -> "GET".equals(request.getMethod())
				&& Set.of(METADATA, SMART_CONFIGURATION).contains(path(request));
		RequestMatcher fhir = request -> path(request).startsWith("/fhir/") || path(request).equals("/fhir");
		AuthorizationManager<RequestAuthorizationContext> anySystemScope =
				(authentication, context) -> new AuthorizationDecision(systemScopes(authentication.get()) > 0);

		http.csrf(csrf -> csrf.disable())
				.sessionManagement(s -> s.sessionCreationPolicy(SessionCreationPolicy.STATELESS))
				.requestCache(cache -> cache.disable())
				.formLogin(form -> form.disable())
				.httpBasic(basic -> basic.disable())
				.logout(logout -> logout.disable())
				.authorizeHttpRequests(auth -> auth
						.dispatcherTypeMatchers(DispatcherType.ERROR, DispatcherType.ASYNC).permitAll()
						.requestMatchers(open).permitAll()
						.requestMatchers(fhir).access(anySystemScope)
						.anyRequest().denyAll())
				.oauth2ResourceServer(rs -> rs.jwt(jwt -> jwt.decoder(smartJwtDecoder)))
				.addFilterBefore(new AuditFilter(), BearerTokenAuthenticationFilter.class);
		return http.build();
	}

	/** {@code GET /fhir/.well-known/smart-configuration}: an exact servlet mapping wins over HAPI's /fhir/*. */
	@Bean
	public ServletRegistrationBean<HttpServlet> smartConfigurationServlet(ObjectMapper objectMapper) {
		Map<String, Object> body = new LinkedHashMap<>();
		body.put("issuer", issuer);
		body.put("jwks_uri", jwksUri);
		body.put("token_endpoint", tokenEndpoint);
		body.put("token_endpoint_auth_methods_supported",
				List.of("private_key_jwt", "client_secret_basic", "client_secret_post"));
		body.put("token_endpoint_auth_signing_alg_values_supported", List.of("ES384", "RS384"));
		body.put("grant_types_supported", List.of("client_credentials"));
		body.put("scopes_supported", scopesSupported);
		body.put("capabilities",
				List.of("client-confidential-asymmetric", "client-confidential-symmetric", "permission-v2"));
		byte[] json;
		try {
			json = objectMapper.writerWithDefaultPrettyPrinter().writeValueAsBytes(body);
		} catch (IOException e) {
			throw new IllegalStateException(e);
		}
		HttpServlet servlet = new HttpServlet() {
			@Override
			protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException {
				resp.setContentType("application/json");
				resp.setHeader("Cache-Control", "no-store");
				resp.getOutputStream().write(json);
			}
		};
		ServletRegistrationBean<HttpServlet> registration = new ServletRegistrationBean<>(servlet, SMART_CONFIGURATION);
		registration.setName("smartConfigurationServlet");
		return registration;
	}

	/** Declares SMART in the CapabilityStatement: rest.security.service SMART-on-FHIR and the oauth-uris. */
	@Bean
	public SmartInitializingSingleton smartCapabilityStatement(RestfulServer fhirRestfulServer) {
		return () -> fhirRestfulServer.registerInterceptor(new Object() {
			@Hook(Pointcut.SERVER_CAPABILITY_STATEMENT_GENERATED)
			public void addSmartSecurity(IBaseConformance conformance) {
				if (!(conformance instanceof CapabilityStatement capabilities)) {
					return;
				}
				for (CapabilityStatement.CapabilityStatementRestComponent rest : capabilities.getRest()) {
					CapabilityStatement.CapabilityStatementRestSecurityComponent security = rest.getSecurity();
					security.setCors(false);
					security.setService(List.of(new CodeableConcept().addCoding(
							new org.hl7.fhir.r4.model.Coding(
									"http://terminology.hl7.org/CodeSystem/restful-security-service",
									"SMART-on-FHIR",
									"SMART-on-FHIR"))));
					security.setDescription("SMART Backend Services: OAuth 2.0 bearer JWTs from " + issuer
							+ ", see .well-known/smart-configuration");
					Extension uris = new Extension(
							"http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris");
					uris.addExtension("token", new UriType(tokenEndpoint));
					security.getExtension().removeIf(e -> uris.getUrl().equals(e.getUrl()));
					security.addExtension(uris);
				}
			}
		});
	}

	static String path(HttpServletRequest request) {
		return request.getRequestURI().substring(request.getContextPath().length());
	}

	static long systemScopes(Authentication authentication) {
		if (!(authentication instanceof JwtAuthenticationToken)) {
			return 0;
		}
		return authentication.getAuthorities().stream()
				.map(GrantedAuthority::getAuthority)
				.filter(a -> a.startsWith("SCOPE_system/"))
				.count();
	}

	/** The audit line: who (client id from the token) did what, and what came of it. */
	static final class AuditFilter extends OncePerRequestFilter {
		@Override
		protected void doFilterInternal(HttpServletRequest request, HttpServletResponse response, FilterChain chain)
				throws ServletException, IOException {
			long started = System.nanoTime();
			try {
				chain.doFilter(request, response);
			} finally {
				Authentication authentication = SecurityContextHolder.getContext().getAuthentication();
				String clientId = "-";
				String scope = "-";
				if (authentication instanceof JwtAuthenticationToken token) {
					Jwt jwt = token.getToken();
					clientId = firstNonBlank(jwt.getClaimAsString("azp"), jwt.getClaimAsString("client_id"),
							jwt.getSubject(), "?");
					scope = token.getAuthorities().stream()
							.map(GrantedAuthority::getAuthority)
							.filter(a -> a.startsWith("SCOPE_"))
							.map(a -> a.substring("SCOPE_".length()))
							.collect(Collectors.joining(" "));
				}
				boolean anonymousPublic = authentication == null || !(authentication instanceof JwtAuthenticationToken);
				anonymousPublic &= request.getHeader("Authorization") == null
						&& Set.of(METADATA, SMART_CONFIGURATION).contains(path(request));
				// hapictl polls /fhir/metadata while starting: anonymous reads of the open documents are not logged.
				if (!anonymousPublic) {
					int status = response.getStatus();
					String challenge = status == 401 || status == 403 ? response.getHeader("WWW-Authenticate") : null;
					AUDIT.info(
							"smart-audit client_id={} method={} path={} status={} ms={} scope=[{}]{}",
							clientId,
							request.getMethod(),
							path(request),
							status,
							(System.nanoTime() - started) / 1_000_000,
							scope,
							challenge == null ? "" : " challenge=" + challenge);
				}
			}
		}

		private static String firstNonBlank(String... values) {
			for (String value : values) {
				if (value != null && !value.isBlank()) {
					return value;
				}
			}
			return null;
		}
	}
}
