package org.infusionfhir.hapi;

import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.api.dao.IFhirSystemDao;
import ca.uhn.fhir.jpa.interceptor.UserRequestRetryVersionConflictsInterceptor;
import ca.uhn.fhir.jpa.provider.IJpaSystemProvider;
import ca.uhn.fhir.jpa.provider.JpaCapabilityStatementProvider;
import ca.uhn.fhir.jpa.search.DatabaseBackedPagingProvider;
import ca.uhn.fhir.narrative2.NullNarrativeGenerator;
import ca.uhn.fhir.rest.api.EncodingEnum;
import ca.uhn.fhir.rest.server.IncomingRequestAddressStrategy;
import ca.uhn.fhir.rest.server.RestfulServer;
import ca.uhn.fhir.rest.server.provider.ResourceProviderFactory;
import ca.uhn.fhir.rest.server.util.ISearchParamRegistry;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.web.servlet.ServletRegistrationBean;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/**
 * REST side of the server: one HAPI {@link RestfulServer} servlet mounted at {@code /fhir/*}.
 */
@Configuration
public class RestServerConfig {

	@Bean
	public RestfulServer fhirRestfulServer(
			IFhirSystemDao<?, ?> systemDao,
			ResourceProviderFactory resourceProviders,
			IJpaSystemProvider systemProvider,
			JpaStorageSettings storageSettings,
			ISearchParamRegistry searchParamRegistry,
			IValidationSupport validationSupport,
			DatabaseBackedPagingProvider pagingProvider,
			@Value("${hapi.paging.default-page-size:50}") int defaultPageSize,
			@Value("${hapi.paging.max-page-size:500}") int maxPageSize) {
		RestfulServer server = new RestfulServer(systemDao.getContext());
		systemDao.getContext().setNarrativeGenerator(new NullNarrativeGenerator());

		// Every resource type: CRUD, search, history, $validate, $expunge, ...
		server.registerProviders(resourceProviders.createProviders());
		// Base URL: transaction/batch Bundles, system history, $expunge, $meta, ...
		server.registerProvider(systemProvider);

		JpaCapabilityStatementProvider capabilities = new JpaCapabilityStatementProvider(
				server, systemDao, storageSettings, searchParamRegistry, validationSupport);
		capabilities.setImplementationDescription("infusion-fhir local HAPI FHIR R4 server (dev/test)");
		server.setServerConformanceProvider(capabilities);

		pagingProvider.setDefaultPageSize(defaultPageSize);
		pagingProvider.setMaximumPageSize(maxPageSize);
		server.setPagingProvider(pagingProvider);
		server.setDefaultPageSize(defaultPageSize);
		server.setMaximumPageSize(maxPageSize);

		server.setDefaultResponseEncoding(EncodingEnum.JSON);
		server.setDefaultPrettyPrint(false);
		server.setServerAddressStrategy(new IncomingRequestAddressStrategy());

		// Lets a client ask for retries on version conflicts (header X-Retry-On-Version-Conflict).
		server.registerInterceptor(new UserRequestRetryVersionConflictsInterceptor());
		return server;
	}

	@Bean
	public ServletRegistrationBean<RestfulServer> fhirServletRegistration(RestfulServer fhirRestfulServer) {
		ServletRegistrationBean<RestfulServer> registration =
				new ServletRegistrationBean<>(fhirRestfulServer, "/fhir/*");
		registration.setName("fhirServlet");
		registration.setLoadOnStartup(1);
		return registration;
	}
}
